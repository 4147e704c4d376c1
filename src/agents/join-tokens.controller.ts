import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope, UnboundedTokenOnly } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodResponse } from '../common/openapi/zod-openapi';
import { AgentsService } from './agents.service';
import { CreatedJoinTokenDto, CreateJoinTokenDto, JoinTokenListDto, JoinTokenParamsDto } from './dto/agent.dto';
import type { CreatedJoinToken } from './enrollment.service';

/** One-time join tokens operators hand to new agents (admin only: an agent acts as root on its host). */
@ApiTags('agents')
@RequireScope('admin')
@Controller('v1/agent-join-tokens')
export class JoinTokensController {
  constructor(private readonly agents: AgentsService) {}

  @Post()
  @UnboundedTokenOnly()
  @ApiOperation({
    operationId: 'createJoinToken',
    summary: 'Create a one-time join token an agent enrols with (its secret is shown in this response only)',
  })
  @ApiZodBody(CreateJoinTokenDto)
  @ApiZodResponse(201, 'The join token with its secret', CreatedJoinTokenDto)
  @ApiProblems(400, 401, 403)
  createJoinToken(@Body() body: CreateJoinTokenDto, @Actor() actor: RequestActor): Promise<CreatedJoinToken> {
    return this.agents.createJoinToken(body, auditActorOf(actor));
  }

  @Get()
  @ApiOperation({ operationId: 'listJoinTokens', summary: 'List the join tokens not used, revoked or expired yet' })
  @ApiZodResponse(200, 'The usable join tokens, newest first', JoinTokenListDto)
  @ApiProblems(401, 403)
  listJoinTokens(): Promise<{ items: Omit<CreatedJoinToken, 'joinToken'>[] }> {
    return this.agents.listJoinTokens();
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ operationId: 'revokeJoinToken', summary: 'Revoke a join token that was not used yet' })
  @ApiZodParams(JoinTokenParamsDto)
  @ApiZodResponse(204, 'Revoked')
  @ApiProblems(400, 401, 403, 404, 409)
  revokeJoinToken(@Param() params: JoinTokenParamsDto, @Actor() actor: RequestActor): Promise<void> {
    return this.agents.revokeJoinToken(params.id, auditActorOf(actor));
  }
}
