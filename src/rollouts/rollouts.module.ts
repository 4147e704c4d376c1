import { Module } from '@nestjs/common';
import { HostsModule } from '../hosts/hosts.module';
import { RolloutsController } from './rollouts.controller';
import { RolloutsRepository } from './rollouts.repository';
import { RolloutsService } from './rollouts.service';

/** Rolling operations: a verb on a unit across hosts in batches. This slice plans them (dry run). */
@Module({
  imports: [HostsModule],
  controllers: [RolloutsController],
  providers: [RolloutsRepository, RolloutsService],
})
export class RolloutsModule {}
