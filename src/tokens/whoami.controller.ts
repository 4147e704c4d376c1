import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { AnyScope } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodResponse } from '../common/openapi/zod-openapi';
import { CurrentPrincipal } from './current-principal.decorator';
import { WhoAmIDto, WhoAmIResponse } from './dto/token.dto';
import type { Principal } from '../common/auth/principal';

@ApiTags('tokens')
@Controller('v1/whoami')
export class WhoAmIController {
  @Get()
  @AnyScope()
  @ApiOperation({
    operationId: 'whoAmI',
    summary: 'The calling token: its name, scopes and bounds (any valid token, whatever its scopes)',
    description:
      'What a client needs to offer only what the token may do (the dashboard hides controls it could not use); ' +
      'the API still decides every request.',
  })
  @ApiZodResponse(200, 'The calling token', WhoAmIDto)
  @ApiProblems(401)
  whoAmI(@CurrentPrincipal() principal: Principal): WhoAmIResponse {
    return {
      id: principal.tokenId,
      name: principal.tokenName,
      scopes: principal.scopes,
      hostSelector: principal.hostSelector,
      unitGlob: principal.unitGlob,
    };
  }
}
