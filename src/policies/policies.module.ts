import { Module } from '@nestjs/common';
import { MetricsModule } from '../infra/metrics/metrics.module';
import { RolloutsModule } from '../rollouts/rollouts.module';
import { PoliciesController } from './policies.controller';
import { PoliciesRepository } from './policies.repository';
import { PoliciesService } from './policies.service';
import { PolicyEvaluationService } from './policy-evaluation.service';
import { PolicyMetrics } from './policy-metrics';

/** Desired-state policies: declared through the API, judged against the units table, reconciled by rollouts. */
@Module({
  imports: [RolloutsModule, MetricsModule],
  controllers: [PoliciesController],
  providers: [PoliciesRepository, PoliciesService, PolicyMetrics],
})
export class PoliciesModule {}

/** The worker's side: evaluating policies (recording hosts out of line; events by trigger). */
@Module({ providers: [PoliciesRepository, PolicyEvaluationService], exports: [PolicyEvaluationService] })
export class PolicyEvaluationModule {}
