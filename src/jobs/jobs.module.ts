import { Module } from '@nestjs/common';
import { AgentReads } from '../agents/agent-reads';
import { HostsModule } from '../hosts/hosts.module';
import { QueueModule } from '../infra/queue/queue.module';
import { SshModule } from '../infra/ssh/ssh.module';
import { OperationsModule } from '../operations/operations.module';
import { TaskRunnerService } from '../operations/task-runner.service';
import { PolicyEvaluationModule } from '../policies/policies.module';
import { ProbesModule } from '../probes/probes.module';
import { RolloutRunnerService } from '../rollouts/rollout-runner.service';
import { RolloutsModule } from '../rollouts/rollouts.module';
import { DiscoveryService } from '../units/discovery.service';
import { UnitsModule } from '../units/units.module';
import { WebhookDeliveryModule } from '../webhooks/webhooks.module';
import { LifecycleProcessor } from './lifecycle.processor';

/**
 * The worker's half of the domains: the processor that takes jobs off both lanes and the services
 * that carry them out on hosts. Only the worker imports it, so the API process builds no SSH
 * executor and no runner.
 */
@Module({
  imports: [
    QueueModule,
    SshModule,
    HostsModule,
    UnitsModule,
    OperationsModule,
    ProbesModule,
    RolloutsModule,
    WebhookDeliveryModule,
    PolicyEvaluationModule,
  ],
  providers: [AgentReads, TaskRunnerService, DiscoveryService, RolloutRunnerService, LifecycleProcessor],
  exports: [LifecycleProcessor],
})
export class JobsModule {}
