import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodParams, ApiZodResponse } from '../common/openapi/zod-openapi';
import { AgentsService } from './agents.service';
import { AgentListDto, AgentParamsDto, AgentView } from './dto/agent.dto';

/** Operators' side of agents: the list of agents, revocation. */
@ApiTags('agents')
@Controller('v1/agents')
export class AgentsController {
  constructor(private readonly agents: AgentsService) {}

  @Get()
  @ApiOperation({
    operationId: 'listAgents',
    summary: 'List enrolled agents: online or not, their facts, their protocol',
  })
  @ApiZodResponse(200, 'Every agent, by host name', AgentListDto)
  @ApiProblems(401, 403)
  list(): Promise<{ items: AgentView[] }> {
    return this.agents.list();
  }

  @Post(':id/revoke')
  @RequireScope('admin')
  @HttpCode(204)
  @ApiOperation({
    operationId: 'revokeAgent',
    summary: 'Revoke an agent: its next request is refused and it claims no more work (enrol again to replace it)',
  })
  @ApiZodParams(AgentParamsDto)
  @ApiZodResponse(204, 'Revoked')
  @ApiProblems(400, 401, 403, 404, 409)
  revoke(@Param() params: AgentParamsDto, @Actor() actor: RequestActor): Promise<void> {
    return this.agents.revoke(params.id, auditActorOf(actor));
  }
}
