import { Module } from '@nestjs/common';
import { OperationsModule } from '../operations/operations.module';
import { UnitsModule } from '../units/units.module';
import { AgentAuthGuard } from './agent-auth.guard';
import { AgentChannelController } from './agent-channel.controller';
import { AgentCredentials } from './agent-credentials';
import { AgentReads } from './agent-reads';
import { AgentSightings } from './agent-sightings';
import { AgentWorkService } from './agent-work.service';
import { AgentsController } from './agents.controller';
import { AgentsRepository } from './agents.repository';
import { AgentsService } from './agents.service';
import { EnrollmentService } from './enrollment.service';
import { JoinTokensController } from './join-tokens.controller';

/** Per-host agents: enrolment, their credentials, the work they fetch, and the reads they answer. */
@Module({
  imports: [OperationsModule, UnitsModule],
  controllers: [AgentsController, JoinTokensController, AgentChannelController],
  providers: [
    AgentsRepository,
    AgentCredentials,
    AgentAuthGuard,
    AgentReads,
    AgentSightings,
    AgentWorkService,
    AgentsService,
    EnrollmentService,
  ],
  exports: [AgentReads],
})
export class AgentsModule {}
