import { Injectable, OnModuleInit } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { MetricsService } from '../infra/metrics/metrics.service';
import { PoliciesRepository } from './policies.repository';

/**
 * drover_policy_out_of_line_hosts{policy}: computed when Prometheus scrapes, from the units table
 * every discovery, agent report and task keeps current, so it is never staler than the units
 * themselves and no discovery path has to remember to update it. One count query per policy.
 */
@Injectable()
export class PolicyMetrics implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly policies: PoliciesRepository,
  ) {}

  onModuleInit(): void {
    const policies = this.policies;
    new Gauge({
      name: 'drover_policy_out_of_line_hosts',
      help: 'Hosts a desired-state policy selects whose unit is out of line (as last discovered), by policy name',
      labelNames: ['policy'] as const,
      registers: [this.metrics.registry],
      async collect() {
        this.reset();
        for (const policy of await policies.all())
          this.set({ policy: policy.name }, await policies.countOutOfLine(policy));
      },
    });
  }
}
