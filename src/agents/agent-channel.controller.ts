import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Body, Controller, Get, Header, HttpCode, Inject, Param, Post, Query, Req, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import type { AgentCommand, EnrollResponse, SessionResponse } from '@drover/protocol';
import { AgentCredentialRoute, Public } from '../common/auth/auth.decorators';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import { AcceptsLargeBody } from '../common/http/json-body.interceptor';
import { markIdleAnswer } from '../infra/logging/access-log';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { AgentAuthGuard, type AgentRequest } from './agent-auth.guard';
import { AgentWorkService } from './agent-work.service';
import {
  AttemptParamsDto,
  ChallengeDto,
  ChallengeResponseDto,
  ClearDto,
  EnrollDto,
  EnrollResponseDto,
  HeartbeatDto,
  HeartbeatResponseDto,
  NextCommandQueryDto,
  NextCommandResponseDto,
  OutputChunkDto,
  ReadParamsDto,
  ReadResultsDto,
  RotateKeyDto,
  SessionDto,
  SessionResponseDto,
  StoppedResponseDto,
  TaskResultDto,
  TaskResultResponseDto,
  UnitsReportDto,
  WaitingDto,
} from './dto/agent.dto';
import { EnrollmentService } from './enrollment.service';

/** The files the API serves for installing an agent (built into AGENT_BUNDLE_DIR by `npm run build`). */
const AGENT_FILES = {
  bundle: 'drover-agent.js',
  installScript: 'install.sh',
  unitFile: 'drover-agent.service',
} as const;

const POLL_PATH = '/agent/v1/commands/next';

/** Whether a request URL is an agent's long poll (GET agent/v1/commands/next below), for the access log. */
export function isAgentPoll(url: string | undefined): boolean {
  return (
    url !== undefined && url.startsWith(POLL_PATH) && (url.length === POLL_PATH.length || url[POLL_PATH.length] === '?')
  );
}

/**
 * The routes a per-host agent calls, and only it: enrolment and sessions without an API token, the
 * rest with its own credential (AgentAuthGuard). No operator route accepts an agent credential.
 */
@ApiTags('agent protocol')
@Controller('agent/v1')
export class AgentChannelController {
  constructor(
    private readonly enrollment: EnrollmentService,
    private readonly work: AgentWorkService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Post('enroll')
  @Public()
  @ApiOperation({ operationId: 'agentEnroll', summary: 'An agent spends a join token and registers its public key' })
  @ApiZodBody(EnrollDto)
  @ApiZodResponse(201, 'Enrolled', EnrollResponseDto)
  @ApiProblems(400, 401, 409)
  enroll(@Body() body: EnrollDto, @Req() request: Request & { id?: unknown }): Promise<EnrollResponse> {
    return this.enrollment.enrol(
      body,
      request.ip ?? request.socket.remoteAddress ?? null,
      typeof request.id === 'string' ? request.id : null,
    );
  }

  @Post('challenge')
  @Public()
  @HttpCode(200)
  @ApiOperation({ operationId: 'agentChallenge', summary: 'A one-time challenge for an agent to sign (60 s)' })
  @ApiZodBody(ChallengeDto)
  @ApiZodResponse(200, 'The challenge', ChallengeResponseDto)
  @ApiProblems(400)
  challenge(@Body() body: ChallengeDto): Promise<{ challenge: string; expiresInMs: number; serverTime: string }> {
    return this.enrollment.challenge(body.agentId);
  }

  @Post('sessions')
  @Public()
  @ApiOperation({ operationId: 'agentSession', summary: 'Exchange a signed challenge for a short-lived credential' })
  @ApiZodBody(SessionDto)
  @ApiZodResponse(201, 'The credential', SessionResponseDto)
  @ApiProblems(400, 401)
  session(@Body() body: SessionDto): Promise<SessionResponse> {
    return this.enrollment.session(body.agentId, body.challenge, body.signature);
  }

  @Get('bundle')
  @Public()
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @ApiProduces('text/javascript')
  @ApiOperation({ operationId: 'agentBundle', summary: 'The agent program: one JavaScript file run by Node' })
  @ApiZodResponse(200, 'The bundle')
  @ApiProblems(404)
  bundle(): Promise<string> {
    return this.agentFile(AGENT_FILES.bundle);
  }

  @Get('install.sh')
  @Public()
  @Header('Content-Type', 'text/x-shellscript; charset=utf-8')
  @ApiProduces('text/x-shellscript')
  @ApiOperation({
    operationId: 'agentInstallScript',
    summary: 'The install script (`drover agent install-command` prints the line that runs it)',
  })
  @ApiZodResponse(200, 'The script')
  @ApiProblems(404)
  installScript(): Promise<string> {
    return this.agentFile(AGENT_FILES.installScript);
  }

  @Get('unit-file')
  @Public()
  @Header('Content-Type', 'text/plain; charset=utf-8')
  @ApiProduces('text/plain')
  @ApiOperation({ operationId: 'agentUnitFile', summary: 'The systemd unit the install script installs' })
  @ApiZodResponse(200, 'The unit file')
  @ApiProblems(404)
  unitFile(): Promise<string> {
    return this.agentFile(AGENT_FILES.unitFile);
  }

  @Post('keys')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(204)
  @ApiOperation({
    operationId: 'agentRotateKey',
    summary: 'Replace the agent’s key with a new one it proves to hold (audited); sessions from then on sign with it',
  })
  @ApiZodBody(RotateKeyDto)
  @ApiZodResponse(204, 'Rotated')
  @ApiProblems(400, 401, 403, 409)
  rotateKey(@Body() body: RotateKeyDto, @Req() request: AgentRequest & { id?: unknown }): Promise<void> {
    return this.enrollment.rotateKey(
      request.agent,
      body.publicKey,
      body.proof,
      request.ip ?? request.socket.remoteAddress ?? null,
      typeof request.id === 'string' ? request.id : null,
    );
  }

  @Post('heartbeat')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(200)
  @ApiOperation({ operationId: 'agentHeartbeat', summary: 'The agent is alive; its host’s facts' })
  @ApiZodBody(HeartbeatDto)
  @ApiZodResponse(200, 'Seen', HeartbeatResponseDto)
  @ApiProblems(400, 401, 403)
  heartbeat(
    @Body() body: HeartbeatDto,
    @Req() request: AgentRequest,
  ): Promise<{ serverTime: string; outdated: boolean }> {
    return this.work.heartbeat(request.agent, body.facts);
  }

  @Post('units')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @AcceptsLargeBody()
  @HttpCode(204)
  @ApiOperation({
    operationId: 'agentReportUnits',
    summary: 'The host’s units as they changed (live, from systemd’s D-Bus signals) or all of them',
  })
  @ApiZodBody(UnitsReportDto)
  @ApiZodResponse(204, 'Stored')
  @ApiProblems(400, 401, 403)
  reportUnits(@Body() body: UnitsReportDto, @Req() request: AgentRequest): Promise<void> {
    return this.work.reportUnits(request.agent, body);
  }

  @Get('commands/next')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @ApiOperation({
    operationId: 'agentNextCommand',
    summary: 'The agent’s next command; held open until there is one or the wait ends (long poll)',
  })
  @ApiZodQuery(NextCommandQueryDto)
  @ApiZodResponse(200, 'A task to carry out, a read to answer, or nothing', NextCommandResponseDto)
  @ApiProblems(400, 401, 403)
  async next(
    @Query() query: NextCommandQueryDto,
    @Req() request: AgentRequest,
  ): Promise<{ command: AgentCommand | null; serverTime: string }> {
    const gone = new AbortController();
    // Listened to only while waiting: the request's 'close' also comes after every answer, and an
    // abort then would build a DOMException (a stack trace) per poll for nothing.
    const onClose = (): void => gone.abort();
    request.on('close', onClose);
    const command = await this.work
      .next(request.agent, query.waitMs ?? this.config.AGENT_POLL_MAX_WAIT_MS, gone.signal)
      .finally(() => request.off('close', onClose));
    // The common answer of an idle agent: not worth an access-log line (thousands a minute).
    if (command === null) markIdleAnswer(request);
    return { command, serverTime: new Date().toISOString() };
  }

  @Post('tasks/:taskId/attempts/:attempt/lease')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(204)
  @ApiOperation({ operationId: 'agentRenewLease', summary: 'Keep the claim of a running attempt' })
  @ApiZodParams(AttemptParamsDto)
  @ApiZodResponse(204, 'Renewed')
  @ApiProblems(400, 401, 403, 404, 409)
  renew(@Param() params: AttemptParamsDto, @Req() request: AgentRequest): Promise<void> {
    return this.work.renew(request.agent, params.taskId, params.attempt);
  }

  @Post('tasks/:taskId/attempts/:attempt/clear')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(204)
  @ApiOperation({
    operationId: 'agentClearToAct',
    summary: 'Store the unit as read before acting and be cleared to act (409: a newer attempt owns the task)',
  })
  @ApiZodParams(AttemptParamsDto)
  @ApiZodBody(ClearDto)
  @ApiZodResponse(204, 'Cleared: act now')
  @ApiProblems(400, 401, 403, 404, 409)
  clear(@Param() params: AttemptParamsDto, @Body() body: ClearDto, @Req() request: AgentRequest): Promise<void> {
    return this.work.clear(request.agent, params.taskId, params.attempt, body.before);
  }

  @Post('tasks/:taskId/attempts/:attempt/waiting')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(204)
  @ApiOperation({ operationId: 'agentWaiting', summary: 'The attempt waits (systemd’s start limit) before acting' })
  @ApiZodParams(AttemptParamsDto)
  @ApiZodBody(WaitingDto)
  @ApiZodResponse(204, 'Recorded')
  @ApiProblems(400, 401, 403, 404, 409)
  waiting(@Param() params: AttemptParamsDto, @Body() body: WaitingDto, @Req() request: AgentRequest): Promise<void> {
    return this.work.waiting(request.agent, params.taskId, params.attempt, body.reason);
  }

  @Get('tasks/:taskId/attempts/:attempt/stopped')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @ApiOperation({ operationId: 'agentStopped', summary: 'Whether the task’s rollout stopped meanwhile (do not act)' })
  @ApiZodParams(AttemptParamsDto)
  @ApiZodResponse(200, 'Why it must not act, or null', StoppedResponseDto)
  @ApiProblems(400, 401, 403, 404, 409)
  async stopped(@Param() params: AttemptParamsDto, @Req() request: AgentRequest): Promise<{ stopped: string | null }> {
    return { stopped: await this.work.stopped(request.agent, params.taskId, params.attempt) };
  }

  @Post('tasks/:taskId/attempts/:attempt/output')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(204)
  @ApiOperation({ operationId: 'agentOutput', summary: 'One chunk of the attempt’s output, numbered (stored once)' })
  @ApiZodParams(AttemptParamsDto)
  @ApiZodBody(OutputChunkDto)
  @ApiZodResponse(204, 'Stored (or already stored)')
  @ApiProblems(400, 401, 403, 404, 409)
  output(@Param() params: AttemptParamsDto, @Body() body: OutputChunkDto, @Req() request: AgentRequest): Promise<void> {
    return this.work.output(request.agent, params.taskId, params.attempt, body);
  }

  @Post('tasks/:taskId/attempts/:attempt/result')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(200)
  @ApiOperation({
    operationId: 'agentTaskResult',
    summary:
      'The attempt’s outcome: recorded with its audit event once; false when the attempt no longer holds the task',
  })
  @ApiZodParams(AttemptParamsDto)
  @ApiZodBody(TaskResultDto)
  @ApiZodResponse(200, 'Whether it was recorded', TaskResultResponseDto)
  @ApiProblems(400, 401, 403, 404)
  async result(
    @Param() params: AttemptParamsDto,
    @Body() body: TaskResultDto,
    @Req() request: AgentRequest,
  ): Promise<{ recorded: boolean }> {
    return { recorded: await this.work.result(request.agent, params.taskId, params.attempt, body.outcome) };
  }

  @Post('reads/:requestId/result')
  @AgentCredentialRoute()
  @UseGuards(AgentAuthGuard)
  @HttpCode(204)
  @ApiOperation({ operationId: 'agentReadResult', summary: 'The answers to a read the server asked for' })
  @ApiZodParams(ReadParamsDto)
  @ApiZodBody(ReadResultsDto)
  @ApiZodResponse(204, 'Stored')
  @ApiProblems(400, 401, 403, 404)
  readResult(
    @Param() params: ReadParamsDto,
    @Body() body: ReadResultsDto,
    @Req() request: AgentRequest,
  ): Promise<void> {
    return this.work.readResults(request.agent, params.requestId, body.results);
  }

  private async agentFile(name: string): Promise<string> {
    try {
      return await readFile(path.resolve(this.config.AGENT_BUNDLE_DIR, name), 'utf8');
    } catch {
      throw new ResourceNotFoundError('agent file', `${name} (build it with npm run build)`);
    }
  }
}
