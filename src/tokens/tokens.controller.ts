import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import { CurrentPrincipal } from './current-principal.decorator';
import {
  CreatedTokenDto,
  CreatedTokenResponse,
  CreateTokenDto,
  ListTokensQueryDto,
  TokenDto,
  TokenPageDto,
  TokenParamsDto,
  TokenResponse,
} from './dto/token.dto';
import type { Principal } from '../common/auth/principal';
import { TokensService } from './tokens.service';

@ApiTags('tokens')
@RequireScope('admin')
@Controller('v1/tokens')
export class TokensController {
  constructor(private readonly tokens: TokensService) {}

  @Post()
  @ApiOperation({
    operationId: 'createToken',
    summary: 'Create an API token; its secret is shown in this response only',
  })
  @ApiZodBody(CreateTokenDto)
  @ApiZodResponse(201, 'The created token with its secret', CreatedTokenDto)
  @ApiProblems(400, 401, 403, 409)
  create(
    @Body() body: CreateTokenDto,
    @CurrentPrincipal() caller: Principal,
    @Actor() actor: RequestActor,
  ): Promise<CreatedTokenResponse> {
    return this.tokens.createFor(caller, body, auditActorOf(actor));
  }

  @Get()
  @ApiOperation({ operationId: 'listTokens', summary: 'List API tokens by name (never their secrets)' })
  @ApiZodQuery(ListTokensQueryDto)
  @ApiZodResponse(200, 'A page of tokens ordered by name', TokenPageDto)
  @ApiProblems(400, 401, 403)
  list(@Query() query: ListTokensQueryDto): Promise<Page<TokenResponse>> {
    return this.tokens.list(query);
  }

  @Get(':id')
  @ApiOperation({ operationId: 'getToken', summary: 'Read one API token' })
  @ApiZodParams(TokenParamsDto)
  @ApiZodResponse(200, 'The token', TokenDto)
  @ApiProblems(400, 401, 403, 404)
  get(@Param() params: TokenParamsDto): Promise<TokenResponse> {
    return this.tokens.get(params.id);
  }

  @Post(':id/revoke')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'revokeToken',
    summary: 'Revoke a token at once (idempotent: revoking again keeps the first revocation time)',
  })
  @ApiZodParams(TokenParamsDto)
  @ApiZodResponse(200, 'The revoked token', TokenDto)
  @ApiProblems(400, 401, 403, 404)
  revoke(
    @Param() params: TokenParamsDto,
    @CurrentPrincipal() caller: Principal,
    @Actor() actor: RequestActor,
  ): Promise<TokenResponse> {
    return this.tokens.revoke(caller, params.id, auditActorOf(actor));
  }
}
