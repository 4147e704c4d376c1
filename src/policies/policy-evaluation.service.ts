import { Injectable, Logger } from '@nestjs/common';
import { driftReasons, unitOf } from './policy-drift';
import { PoliciesRepository } from './policies.repository';

/**
 * Evaluates every policy against the units table (which discoveries, agent reports and tasks keep
 * current), so that hosts going out of line and coming back are recorded and sent as webhook
 * events. The worker's reconciler runs it every RECONCILE_INTERVAL_MS: an event follows the
 * discovery that saw the change within one interval, whichever path stored it.
 */
@Injectable()
export class PolicyEvaluationService {
  private readonly logger = new Logger(PolicyEvaluationService.name);

  constructor(private readonly policies: PoliciesRepository) {}

  /** Returns how many hosts went out of line and came back across all policies. */
  async evaluateAll(): Promise<{ wentOut: number; cameIn: number }> {
    const totals = { wentOut: 0, cameIn: 0 };
    for (const policy of await this.policies.all()) {
      const result = await this.policies.evaluate(policy.id, (current, row) => driftReasons(current, unitOf(row)));
      if (result === null) continue;
      totals.wentOut += result.wentOut;
      totals.cameIn += result.cameIn;
      if (result.wentOut + result.cameIn > 0) {
        this.logger.log({ policy: policy.name, ...result }, 'policy evaluated: hosts changed');
      }
    }
    return totals;
  }
}
