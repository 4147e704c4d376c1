import { Module } from '@nestjs/common';
import { HostsModule } from '../hosts/hosts.module';
import { MetricsModule } from '../infra/metrics/metrics.module';
import { PgNotifications } from '../infra/prisma/pg-notifications';
import { QueueModule } from '../infra/queue/queue.module';
import { OperationsModule } from '../operations/operations.module';
import { ProbesModule } from '../probes/probes.module';
import { TokensModule } from '../tokens/tokens.module';
import { RolloutAuthorityService } from './rollout-authority.service';
import { RolloutControlService } from './rollout-control.service';
import { RolloutEventFeed } from './rollout-event-feed';
import { RolloutsController } from './rollouts.controller';
import { RolloutsRepository } from './rollouts.repository';
import { RolloutsService } from './rollouts.service';

/**
 * Rolling operations: a verb on a unit across hosts in batches. The API plans, starts and steers
 * them; the runner (worker side, provided by the jobs module) takes each step; both only read and write the rollout's rows.
 */
@Module({
  imports: [HostsModule, QueueModule, OperationsModule, ProbesModule, TokensModule, MetricsModule],
  controllers: [RolloutsController],
  providers: [
    RolloutsRepository,
    RolloutsService,
    RolloutControlService,
    RolloutAuthorityService,
    RolloutEventFeed,
    PgNotifications,
  ],
  exports: [RolloutsRepository, RolloutsService, RolloutAuthorityService],
})
export class RolloutsModule {}
