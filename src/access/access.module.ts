import { Module } from '@nestjs/common';
import { HostsModule } from '../hosts/hosts.module';
import { ProbesModule } from '../probes/probes.module';
import { AccessController } from './access.controller';
import { AccessService } from './access.service';

/** Least-privilege access for drover on the hosts (sudoers drop-ins for its SSH user, polkit rules for its agent). */
@Module({
  imports: [HostsModule, ProbesModule],
  controllers: [AccessController],
  providers: [AccessService],
})
export class AccessModule {}
