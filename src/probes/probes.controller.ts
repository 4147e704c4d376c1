import { Body, Controller, Delete, Get, HttpCode, Param, Put, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope, UnboundedTokenOnly } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import {
  ListProbesQueryDto,
  ProbeDto,
  ProbePageDto,
  ProbeParamsDto,
  ProbeResponse,
  PutProbeDto,
} from './dto/probe.dto';
import { ProbesService } from './probes.service';

@ApiTags('probes')
@Controller('v1/probes')
export class ProbesController {
  constructor(private readonly probes: ProbesService) {}

  @Get()
  @ApiOperation({
    operationId: 'listProbes',
    summary: 'The probe catalogue: commands rollouts may run as health probes',
  })
  @ApiZodQuery(ListProbesQueryDto)
  @ApiZodResponse(200, 'A page of probes ordered by name', ProbePageDto)
  @ApiProblems(400, 401)
  list(@Query() query: ListProbesQueryDto): Promise<Page<ProbeResponse>> {
    return this.probes.list(query);
  }

  @Get(':name')
  @ApiOperation({ operationId: 'getProbe', summary: 'Read one probe command' })
  @ApiZodParams(ProbeParamsDto)
  @ApiZodResponse(200, 'The probe', ProbeDto)
  @ApiProblems(400, 401, 404)
  get(@Param() params: ProbeParamsDto): Promise<ProbeResponse> {
    return this.probes.get(params.name);
  }

  @Put(':name')
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({
    operationId: 'putProbe',
    summary: 'Create or replace a probe command (unbounded admin tokens only)',
    description:
      'The command runs as root on every host of each rollout that names it, so only an unbounded admin may ' +
      'define it. Audited with the old and the new definition; rollouts in progress use the new one from their ' +
      'next health check.',
  })
  @ApiZodParams(ProbeParamsDto)
  @ApiZodBody(PutProbeDto)
  @ApiZodResponse(201, 'Created', ProbeDto)
  @ApiZodResponse(200, 'Replaced', ProbeDto)
  @ApiProblems(400, 401, 403, 409)
  async put(
    @Param() params: ProbeParamsDto,
    @Body() body: PutProbeDto,
    @Actor() actor: RequestActor,
    @Res({ passthrough: true }) response: Response,
  ): Promise<ProbeResponse> {
    const { probe, created } = await this.probes.put(params.name, body, auditActorOf(actor));
    response.status(created ? 201 : 200);
    return probe;
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({
    operationId: 'deleteProbe',
    summary: 'Delete a probe command',
    description:
      'Rollouts that name it fail its health checks from then on and stop before their next batch: deleting a ' +
      'probe is also how to stop it running everywhere at once.',
  })
  @ApiZodParams(ProbeParamsDto)
  @ApiZodResponse(204, 'Deleted')
  @ApiProblems(400, 401, 403, 404)
  delete(@Param() params: ProbeParamsDto, @Actor() actor: RequestActor): Promise<void> {
    return this.probes.delete(params.name, auditActorOf(actor));
  }
}
