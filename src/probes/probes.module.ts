import { Module } from '@nestjs/common';
import { ProbesController } from './probes.controller';
import { ProbesRepository } from './probes.repository';
import { ProbesService } from './probes.service';

/** The probe catalogue, read by rollouts (plans, health checks) and the sudoers generator. */
@Module({ controllers: [ProbesController], providers: [ProbesRepository, ProbesService], exports: [ProbesRepository] })
export class ProbesModule {}
