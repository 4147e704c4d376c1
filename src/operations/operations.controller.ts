import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { Actor, RequestActor, RequireScope } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import { HostParamsDto } from '../hosts/dto/host.dto';
import {
  CreateOperationDto,
  HostActionDto,
  ListOperationsQueryDto,
  OperationDto,
  OperationPageDto,
  OperationParamsDto,
  OperationResponse,
  OperationSummary,
} from './dto/operation.dto';
import { CurrentPrincipal } from '../tokens/current-principal.decorator';
import type { Principal } from '../common/auth/principal';
import { OperationsService } from './operations.service';

@ApiTags('operations')
@Controller('v1')
export class OperationsController {
  constructor(private readonly operations: OperationsService) {}

  @Post('operations')
  @HttpCode(202)
  @RequireScope('operate')
  @ApiOperation({
    operationId: 'createOperation',
    summary: 'Apply a systemctl verb to a unit on every host a selector matches (one task per host)',
  })
  @ApiZodBody(CreateOperationDto)
  @ApiZodResponse(202, 'Accepted: the operation with its queued tasks', OperationDto)
  @ApiProblems(400, 401, 403, 422)
  create(
    @Body() body: CreateOperationDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<OperationResponse> {
    return this.operations.create(body, actor, principal);
  }

  @Post('hosts/:name/actions')
  @HttpCode(202)
  @RequireScope('operate')
  @ApiOperation({ operationId: 'actOnHost', summary: 'Apply a systemctl verb to a unit of one host' })
  @ApiZodParams(HostParamsDto)
  @ApiZodBody(HostActionDto)
  @ApiZodResponse(202, 'Accepted: the operation with its task', OperationDto)
  @ApiProblems(400, 401, 403, 404)
  actOnHost(
    @Param() params: HostParamsDto,
    @Body() body: HostActionDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<OperationResponse> {
    return this.operations.createForHost(params.name, body, actor, principal);
  }

  @Get('operations')
  @ApiOperation({ operationId: 'listOperations', summary: 'Operations, newest first' })
  @ApiZodQuery(ListOperationsQueryDto)
  @ApiZodResponse(200, 'A page of operations', OperationPageDto)
  @ApiProblems(400, 401)
  list(@Query() query: ListOperationsQueryDto): Promise<Page<OperationSummary>> {
    return this.operations.list(query);
  }

  @Get('operations/:id')
  @ApiOperation({
    operationId: 'getOperation',
    summary: 'One operation with every task: state, before/after unit state, output, reason',
  })
  @ApiZodParams(OperationParamsDto)
  @ApiZodResponse(200, 'The operation', OperationDto)
  @ApiProblems(400, 401, 404)
  get(@Param() params: OperationParamsDto): Promise<OperationResponse> {
    return this.operations.get(params.id);
  }
}
