import { Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope } from '../common/auth/auth.decorators';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiProblems, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import {
  DiscoveryRequestedDto,
  ListHostUnitsQueryDto,
  ListUnitsQueryDto,
  UnitDriftDto,
  UnitDriftQueryDto,
  UnitDriftResponse,
  UnitPageDto,
  UnitParamsDto,
  UnitResponse,
} from './dto/unit.dto';
import { HostParamsDto } from '../hosts/dto/host.dto';
import { CurrentPrincipal } from '../tokens/current-principal.decorator';
import type { Principal } from '../common/auth/principal';
import { UnitsService } from './units.service';

@ApiTags('units')
@Controller('v1')
export class UnitsController {
  constructor(private readonly units: UnitsService) {}

  @Get('hosts/:name/units')
  @ApiOperation({ operationId: 'listHostUnits', summary: 'Units discovered on one host, ordered by name' })
  @ApiZodParams(HostParamsDto)
  @ApiZodQuery(ListHostUnitsQueryDto)
  @ApiZodResponse(200, 'A page of units', UnitPageDto)
  @ApiProblems(400, 401, 404)
  listForHost(@Param() params: HostParamsDto, @Query() query: ListHostUnitsQueryDto): Promise<Page<UnitResponse>> {
    return this.units.listForHost(params.name, query);
  }

  @Post('hosts/:name/discover')
  @HttpCode(202)
  @RequireScope('operate')
  @ApiOperation({ operationId: 'discoverHostUnits', summary: 'Queue a fresh listing of every unit on the host' })
  @ApiZodParams(HostParamsDto)
  @ApiZodResponse(202, 'Queued', DiscoveryRequestedDto)
  @ApiProblems(400, 401, 403, 404)
  discover(
    @Param() params: HostParamsDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<{ hostName: string; queued: true }> {
    return this.units.requestDiscovery(params.name, auditActorOf(actor), principal);
  }

  @Get('units/:name/drift')
  @ApiOperation({
    operationId: 'getUnitDrift',
    summary: 'How one unit differs across the fleet: hosts grouped by definition, the diff of two groups, flapping',
  })
  @ApiZodParams(UnitParamsDto)
  @ApiZodQuery(UnitDriftQueryDto)
  @ApiZodResponse(200, 'The unit across the selected hosts', UnitDriftDto)
  @ApiProblems(400, 401)
  drift(@Param() params: UnitParamsDto, @Query() query: UnitDriftQueryDto): Promise<UnitDriftResponse> {
    return this.units.driftOf(params.name, query);
  }

  @Get('units')
  @ApiOperation({
    operationId: 'listUnits',
    summary: 'One unit across the fleet (optionally a selector), by host name',
  })
  @ApiZodQuery(ListUnitsQueryDto)
  @ApiZodResponse(200, 'A page of units', UnitPageDto)
  @ApiProblems(400, 401)
  listByName(@Query() query: ListUnitsQueryDto): Promise<Page<UnitResponse>> {
    return this.units.listByName(query);
  }
}
