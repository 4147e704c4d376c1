import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope, UnboundedTokenOnly } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import { AcceptsLargeBody } from '../common/http/json-body.interceptor';
import type { Page } from '../common/pagination/cursor';
import {
  BulkUpsertHostsDto,
  BulkUpsertResult,
  BulkUpsertResultDto,
  CreateHostDto,
  HostDto,
  HostPageDto,
  HostParamsDto,
  HostResponse,
  ListHostsQueryDto,
  UpdateHostDto,
} from './dto/host.dto';
import { HostsService } from './hosts.service';

@ApiTags('hosts')
@Controller('v1/hosts')
export class HostsController {
  constructor(private readonly hosts: HostsService) {}

  @Get()
  @ApiOperation({ operationId: 'listHosts', summary: 'List hosts, optionally filtered by a label selector' })
  @ApiZodQuery(ListHostsQueryDto)
  @ApiZodResponse(200, 'A page of hosts ordered by name', HostPageDto)
  @ApiProblems(400, 401)
  list(@Query() query: ListHostsQueryDto): Promise<Page<HostResponse>> {
    return this.hosts.list(query);
  }

  @Post()
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({ operationId: 'createHost', summary: 'Add a host to the inventory' })
  @ApiZodBody(CreateHostDto)
  @ApiZodResponse(201, 'The created host', HostDto)
  @ApiProblems(400, 401, 403, 409)
  create(@Body() body: CreateHostDto, @Actor() actor: RequestActor): Promise<HostResponse> {
    return this.hosts.create(body, auditActorOf(actor));
  }

  @Post('bulk-upsert')
  @AcceptsLargeBody()
  @HttpCode(200)
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({
    operationId: 'bulkUpsertHosts',
    summary: 'Create or replace up to 10,000 hosts by name in one transaction (idempotent)',
  })
  @ApiZodBody(BulkUpsertHostsDto)
  @ApiZodResponse(200, 'How many hosts were created, updated and already up to date', BulkUpsertResultDto)
  @ApiProblems(400, 401, 403)
  bulkUpsert(@Body() body: BulkUpsertHostsDto, @Actor() actor: RequestActor): Promise<BulkUpsertResult> {
    return this.hosts.bulkUpsert(body.hosts, auditActorOf(actor));
  }

  @Get(':name')
  @ApiOperation({ operationId: 'getHost', summary: 'Read one host' })
  @ApiZodParams(HostParamsDto)
  @ApiZodResponse(200, 'The host', HostDto)
  @ApiProblems(400, 401, 404)
  get(@Param() params: HostParamsDto): Promise<HostResponse> {
    return this.hosts.get(params.name);
  }

  @Patch(':name')
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({ operationId: 'updateHost', summary: 'Change fields of a host (labels are replaced whole)' })
  @ApiZodParams(HostParamsDto)
  @ApiZodBody(UpdateHostDto)
  @ApiZodResponse(200, 'The updated host', HostDto)
  @ApiProblems(400, 401, 403, 404)
  update(
    @Param() params: HostParamsDto,
    @Body() body: UpdateHostDto,
    @Actor() actor: RequestActor,
  ): Promise<HostResponse> {
    return this.hosts.update(params.name, body, auditActorOf(actor));
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({ operationId: 'deleteHost', summary: 'Remove a host and its discovered units' })
  @ApiZodParams(HostParamsDto)
  @ApiZodResponse(204, 'Deleted')
  @ApiProblems(400, 401, 403, 404)
  delete(@Param() params: HostParamsDto, @Actor() actor: RequestActor): Promise<void> {
    return this.hosts.delete(params.name, auditActorOf(actor));
  }
}
