import { Module } from '@nestjs/common';
import { HostsModule } from '../hosts/hosts.module';
import { QueueModule } from '../infra/queue/queue.module';
import { UnitsController } from './units.controller';
import { UnitsRepository } from './units.repository';
import { UnitsService } from './units.service';

@Module({
  imports: [HostsModule, QueueModule],
  controllers: [UnitsController],
  providers: [UnitsRepository, UnitsService],
  exports: [UnitsRepository],
})
export class UnitsModule {}
