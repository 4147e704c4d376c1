import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The process's Prometheus registry and the metrics drover records itself. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'drover_http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly auditExportsInFlight = new Gauge({
    name: 'drover_audit_exports_in_flight',
    help: 'Audit exports being streamed now (each holds a database cursor position and a response)',
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'drover_auth_failures_total',
    help: 'Requests refused with 401, by reason (missing, malformed, unknown, expired, revoked token)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly rolloutEventStreams = new Gauge({
    name: 'drover_rollout_event_streams',
    help: 'Rollout event streams (SSE) open on this process',
    registers: [this.registry],
  });

  readonly rolloutEventSources = new Gauge({
    name: 'drover_rollout_event_sources',
    help: 'Rollouts this process reads events for, each shared by all of its open streams',
    registers: [this.registry],
  });

  readonly rolloutEventReads = new Counter({
    name: 'drover_rollout_event_reads_total',
    help: 'Reads of new rollout events by the shared sources (woken by NOTIFY, or the slow safety re-check)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'drover_' });
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
