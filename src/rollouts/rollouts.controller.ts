import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScope } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodResponse } from '../common/openapi/zod-openapi';
import { CurrentPrincipal } from '../tokens/current-principal.decorator';
import type { Principal } from '../tokens/tokens.service';
import { RolloutPlan, RolloutPlanDto, RolloutStrategyDto } from './dto/rollout.dto';
import { RolloutsService } from './rollouts.service';

@ApiTags('rollouts')
@Controller('v1/rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post('plan')
  @HttpCode(200)
  @RequireScope('operate')
  @ApiOperation({
    operationId: 'planRollout',
    summary: 'Dry run of a rollout: hosts in order, batches, failure budget and whether it could start now',
    description:
      'Computed from the inventory and the last discovered unit states. Changes nothing and writes no row, so a ' +
      'dry run is not recorded in the audit trail. A plan that could not start is still a 200, with `ok: false` ' +
      'and the `problems`.',
  })
  @ApiZodBody(RolloutStrategyDto)
  @ApiZodResponse(200, 'The plan', RolloutPlanDto)
  @ApiProblems(400, 401, 403, 422)
  plan(@Body() body: RolloutStrategyDto, @CurrentPrincipal() principal: Principal): Promise<RolloutPlan> {
    return this.rollouts.plan(body, principal);
  }
}
