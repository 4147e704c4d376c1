import { Module } from '@nestjs/common';
import { HostsModule } from '../hosts/hosts.module';
import { QueueModule } from '../infra/queue/queue.module';
import { DispatcherService } from './dispatcher.service';
import { OperationsController } from './operations.controller';
import { OperationsRepository } from './operations.repository';
import { OperationsService } from './operations.service';

/** Operations and their tasks: the API side (create, read) and the dispatcher both sides use. */
@Module({
  imports: [HostsModule, QueueModule],
  controllers: [OperationsController],
  providers: [OperationsRepository, OperationsService, DispatcherService],
  exports: [OperationsRepository, DispatcherService],
})
export class OperationsModule {}
