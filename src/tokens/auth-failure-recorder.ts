import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { AUDIT_ACTION } from '@drover/protocol';
import { AuditRepository } from '../audit/audit.repository';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { MetricsService } from '../infra/metrics/metrics.service';
import { AuthFailure, AuthFailureRecord, AuthFailureWindows } from './auth-failures';

/**
 * Counts every failed authentication (metric) and records them in the audit trail coalesced by
 * AuthFailureWindows. Each API process coalesces its own failures: N replicas write at most N
 * times as many events, which keeps the count exact without a shared store on the 401 path.
 */
@Injectable()
export class AuthFailureRecorder implements OnModuleDestroy {
  private readonly logger = new Logger(AuthFailureRecorder.name);
  private readonly windows: AuthFailureWindows;
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    private readonly audit: AuditRepository,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.windows = new AuthFailureWindows(config.AUTH_FAILURE_AUDIT_WINDOW_MS);
    // Writes the rest of a window when it ends, even if no further failure comes to trigger it.
    this.flushTimer = setInterval(
      () => void this.write(this.windows.takeDue(Date.now())),
      config.AUTH_FAILURE_AUDIT_WINDOW_MS,
    );
    this.flushTimer.unref();
  }

  async record(failure: AuthFailure): Promise<void> {
    this.metrics.authFailures.inc({ reason: failure.reason });
    const { due, first } = this.windows.add(failure, Date.now());
    await this.write(first ? [...due, first] : due);
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.write(this.windows.takeDue(Infinity));
  }

  private async write(records: AuthFailureRecord[]): Promise<void> {
    for (const record of records) {
      try {
        await this.audit.append({
          actorTokenId: null,
          actorName: '(unauthenticated)',
          requestId: record.requestId,
          sourceAddress: record.sourceAddress,
          action: AUDIT_ACTION.authFailed,
          result: 'denied',
          parameters: {
            reason: record.reason,
            tokenPrefix: record.tokenPrefix,
            count: record.count,
            windowStart: record.windowStart.toISOString(),
          },
          reason: `${record.count} failed authentication(s): ${record.reason} token`,
        });
      } catch (error) {
        // The 401 is answered either way; the metric still counts what the trail missed.
        this.logger.error({ err: error, ...record }, 'could not record failed authentications in the audit trail');
      }
    }
  }
}
