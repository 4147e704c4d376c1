import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Actor, RequestActor, RequireScope } from '../common/auth/auth.decorators';
import type { Principal } from '../common/auth/principal';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import { CurrentPrincipal } from '../tokens/current-principal.decorator';
import {
  CreatePolicyDto,
  ListPoliciesQueryDto,
  PolicyDriftItem,
  PolicyDriftPageDto,
  PolicyDriftQueryDto,
  PolicyDto,
  PolicyPageDto,
  PolicyParamsDto,
  PolicyResponse,
  ReconcileDto,
  ReconcilePolicyDto,
  ReconcileResponse,
  UpdatePolicyDto,
} from './dto/policy.dto';
import { PoliciesService } from './policies.service';

const BOUNDS =
  'A token bounded by hostSelector or unitGlob may only declare policies inside its bounds: the unit must match ' +
  'its unitGlob and the selector must include every requirement of its hostSelector (403 otherwise).';

/**
 * Reading needs `read`; declaring, changing and reconciling need `operate`, the scope of the
 * rollouts a policy leads to.
 */
@ApiTags('policies')
@Controller('v1/policies')
export class PoliciesController {
  constructor(private readonly policies: PoliciesService) {}

  @Post()
  @RequireScope('operate')
  @ApiOperation({
    operationId: 'createPolicy',
    summary: 'Declare what a unit must be (enabled/disabled/masked, active/inactive) on the hosts a selector matches',
    description: BOUNDS,
  })
  @ApiZodBody(CreatePolicyDto)
  @ApiZodResponse(201, 'Created', PolicyDto)
  @ApiProblems(400, 401, 403, 409)
  create(
    @Body() body: CreatePolicyDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<PolicyResponse> {
    return this.policies.create(body, actor, principal);
  }

  @Get()
  @ApiOperation({ operationId: 'listPolicies', summary: 'Desired-state policies, by name' })
  @ApiZodQuery(ListPoliciesQueryDto)
  @ApiZodResponse(200, 'A page of policies ordered by name', PolicyPageDto)
  @ApiProblems(400, 401, 403)
  list(@Query() query: ListPoliciesQueryDto): Promise<Page<PolicyResponse>> {
    return this.policies.list(query);
  }

  @Get(':id')
  @ApiOperation({ operationId: 'getPolicy', summary: 'Read one policy' })
  @ApiZodParams(PolicyParamsDto)
  @ApiZodResponse(200, 'The policy', PolicyDto)
  @ApiProblems(400, 401, 403, 404)
  get(@Param() params: PolicyParamsDto): Promise<PolicyResponse> {
    return this.policies.get(params.id);
  }

  @Patch(':id')
  @RequireScope('operate')
  @ApiOperation({ operationId: 'updatePolicy', summary: 'Change a policy', description: BOUNDS })
  @ApiZodParams(PolicyParamsDto)
  @ApiZodBody(UpdatePolicyDto)
  @ApiZodResponse(200, 'The policy after the change', PolicyDto)
  @ApiProblems(400, 401, 403, 404, 409)
  update(
    @Param() params: PolicyParamsDto,
    @Body() body: UpdatePolicyDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<PolicyResponse> {
    return this.policies.update(params.id, body, actor, principal);
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScope('operate')
  @ApiOperation({ operationId: 'deletePolicy', summary: 'Delete a policy', description: BOUNDS })
  @ApiZodParams(PolicyParamsDto)
  @ApiZodResponse(204, 'Deleted')
  @ApiProblems(400, 401, 403, 404)
  delete(
    @Param() params: PolicyParamsDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    return this.policies.delete(params.id, actor, principal);
  }

  @Get(':id/drift')
  @ApiOperation({
    operationId: 'getPolicyDrift',
    summary: 'Hosts the policy selects whose unit is out of line, with why',
    description:
      'Computed now from the units drover last stored for each host (discovery, agent report, or the state a ' +
      'task left), so it is as fresh as those: run a discovery first for a fresh answer. A host without the unit ' +
      'is out of line ("unit not found on host"). The metric drover_policy_out_of_line_hosts{policy} counts the same.',
  })
  @ApiZodParams(PolicyParamsDto)
  @ApiZodQuery(PolicyDriftQueryDto)
  @ApiZodResponse(200, 'A page of hosts out of line, by host name', PolicyDriftPageDto)
  @ApiProblems(400, 401, 403, 404)
  drift(@Param() params: PolicyParamsDto, @Query() query: PolicyDriftQueryDto): Promise<Page<PolicyDriftItem>> {
    return this.policies.drift(params.id, query);
  }

  @Post(':id/reconcile')
  @RequireScope('operate')
  @ApiOperation({
    operationId: 'reconcilePolicy',
    summary: 'Bring hosts out of line back in line: one verb per call, as a rollout (dry run by default)',
    description:
      'A rollout applies one verb, so a reconcile takes one step: the first of unmask, enable, disable, mask, ' +
      'start, stop that some host out of line needs next, on every host that needs it next (the policy selector ' +
      'narrowed by onlyHosts). Hosts needing other or further steps are listed in `later`: reconcile again once ' +
      'this rollout is done. With dryRun true (the default) the plan is returned (200) and nothing is written; ' +
      'with false the rollout starts (201) through the same path as POST /v1/rollouts: its token bounds, overlap ' +
      'admission and audit (rollout.create and policy.reconcile). Hosts without the unit cannot be reconciled ' +
      '(`unreconcilable`).',
  })
  @ApiZodParams(PolicyParamsDto)
  @ApiZodBody(ReconcilePolicyDto)
  @ApiZodResponse(200, 'The step and its plan (dry run), or nothing to do', ReconcileDto)
  @ApiZodResponse(201, 'The step and the rollout started', ReconcileDto)
  @ApiProblems(400, 401, 403, 404, 409, 422)
  async reconcile(
    @Param() params: PolicyParamsDto,
    @Body() body: ReconcilePolicyDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<ReconcileResponse> {
    const answer = await this.policies.reconcile(params.id, body, actor, principal);
    response.status(answer.rollout === null ? 200 : 201);
    return answer;
  }
}
