import { ROLLOUT_EVENT_TYPES, type RolloutControl } from '@drover/protocol';
import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiHeader, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Actor, RequestActor, RequireScope } from '../common/auth/auth.decorators';
import { RequestValidationError } from '../common/errors/domain-errors';
import {
  ApiProblems,
  ApiZodBody,
  ApiZodEventStream,
  ApiZodParams,
  ApiZodQuery,
  ApiZodResponse,
} from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import { CurrentPrincipal } from '../tokens/current-principal.decorator';
import type { Principal } from '../common/auth/principal';
import {
  ListRolloutsQueryDto,
  RolloutControlDto,
  RolloutDto,
  RolloutEventDto,
  RolloutEventsQueryDto,
  RolloutPageDto,
  RolloutParamsDto,
  RolloutPlan,
  RolloutPlanDto,
  RolloutResponse,
  RolloutStrategyDto,
  RolloutSummary,
} from './dto/rollout.dto';
import { RolloutControlService } from './rollout-control.service';
import { RolloutsService } from './rollouts.service';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const LAST_EVENT_ID = /^\d{1,19}$/;
const HEARTBEAT_MS = 15_000;

function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new RequestValidationError([
      { field: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters without spaces' },
    ]);
  }
  return header;
}

function controlRoute(action: RolloutControl, summary: string): MethodDecorator {
  const decorators: MethodDecorator[] = [
    Post(`:id/${action}`),
    HttpCode(200),
    RequireScope('operate'),
    ApiOperation({ operationId: `${action}Rollout`, summary }),
    ApiZodParams(RolloutParamsDto),
    ApiZodBody(RolloutControlDto),
    ApiZodResponse(200, 'The rollout after the change', RolloutDto),
    ApiProblems(400, 401, 403, 404, 409),
  ];
  return (target, key, descriptor) => {
    for (const decorator of decorators) decorator(target, key, descriptor);
  };
}

@ApiTags('rollouts')
@Controller('v1/rollouts')
export class RolloutsController {
  constructor(
    private readonly rollouts: RolloutsService,
    private readonly control: RolloutControlService,
  ) {}

  @Post('plan')
  @HttpCode(200)
  @RequireScope('operate')
  @ApiOperation({
    operationId: 'planRollout',
    summary: 'Dry run of a rollout: hosts in order, batches, failure budget and whether it could start now',
    description:
      'Computed from the inventory and the last discovered unit states. Changes nothing and writes no row, so a ' +
      'dry run is not recorded in the audit trail. A plan that could not start is still a 200, with `ok: false` ' +
      'and the `problems`. POST /v1/rollouts takes the same body and starts it.',
  })
  @ApiZodBody(RolloutStrategyDto)
  @ApiZodResponse(200, 'The plan', RolloutPlanDto)
  @ApiProblems(400, 401, 403, 422)
  plan(@Body() body: RolloutStrategyDto, @CurrentPrincipal() principal: Principal): Promise<RolloutPlan> {
    return this.rollouts.plan(body, principal);
  }

  @Post()
  @HttpCode(201)
  @RequireScope('operate')
  @ApiOperation({
    operationId: 'createRollout',
    summary: 'Start a rollout',
    description:
      'Starts the rollout the plan endpoint shows for the same body (422 with the problems when it could not ' +
      'start). With an Idempotency-Key, sending the same key and body again returns the same rollout (200, ' +
      'header Idempotent-Replayed: true) and a different body under that key is a 409: a pipeline can retry ' +
      'its request blindly without starting a second rollout. Keys are per token.',
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Any 1-255 printable ASCII characters, unique per intended rollout (e.g. the pipeline run id)',
  })
  @ApiZodBody(RolloutStrategyDto)
  @ApiZodResponse(201, 'Started', RolloutDto)
  @ApiZodResponse(200, 'Replayed: this key and body already started this rollout', RolloutDto)
  @ApiProblems(400, 401, 403, 409, 422)
  async create(
    @Body() body: RolloutStrategyDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<RolloutResponse> {
    const { rollout, replayed } = await this.rollouts.create(body, idempotencyKeyOf(idempotencyKey), actor, principal);
    if (replayed) response.status(200).setHeader('Idempotent-Replayed', 'true');
    return rollout;
  }

  @Get()
  @ApiOperation({ operationId: 'listRollouts', summary: 'Rollouts, newest first' })
  @ApiZodQuery(ListRolloutsQueryDto)
  @ApiZodResponse(200, 'A page of rollouts', RolloutPageDto)
  @ApiProblems(400, 401)
  list(@Query() query: ListRolloutsQueryDto): Promise<Page<RolloutSummary>> {
    return this.rollouts.list(query);
  }

  @Get(':id')
  @ApiOperation({ operationId: 'getRollout', summary: 'A rollout with every host and batch' })
  @ApiZodParams(RolloutParamsDto)
  @ApiZodResponse(200, 'The rollout', RolloutDto)
  @ApiProblems(400, 401, 404)
  get(@Param() params: RolloutParamsDto): Promise<RolloutResponse> {
    return this.rollouts.get(params.id);
  }

  @Get(':id/events')
  @ApiOperation({
    operationId: 'followRollout',
    summary: 'Progress as server-sent events, resumable with Last-Event-ID',
    description:
      'Every event of the rollout from the first (or after Last-Event-ID / `after`), then new ones as they ' +
      'happen; the stream ends after `rollout.finished` once no host is in flight. Event types (the RolloutEvent ' +
      `schema gives each one's data): ${ROLLOUT_EVENT_TYPES.join(', ')}. ` +
      '`data` is a JSON object with an `at` timestamp; `id` grows with every event. One token ' +
      'may hold ROLLOUT_EVENT_STREAMS_PER_TOKEN streams open per API process (429 too_many_streams beyond).',
  })
  @ApiZodParams(RolloutParamsDto)
  @ApiZodQuery(RolloutEventsQueryDto)
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'Resume after this event id' })
  @ApiProduces('text/event-stream')
  @ApiZodEventStream('The event stream (text/event-stream)', RolloutEventDto)
  @ApiProblems(400, 401, 404, 429)
  async events(
    @Param() params: RolloutParamsDto,
    @Query() query: RolloutEventsQueryDto,
    @Headers('last-event-id') lastEventId: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Res() response: Response,
  ): Promise<void> {
    if (lastEventId !== undefined && !LAST_EVENT_ID.test(lastEventId)) {
      throw new RequestValidationError([{ field: 'Last-Event-ID', message: 'must be an event id (digits)' }]);
    }
    const after = BigInt(lastEventId ?? query.after ?? 0);
    const clientGone = new AbortController();
    response.on('close', () => clientGone.abort());
    const stream = this.rollouts.follow(params.id, after, principal.tokenId, clientGone.signal);
    // The first read throws a 404 (or 429) before any byte is sent, so the client gets a problem+json.
    const first = await stream.next();
    response.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    });
    response.flushHeaders();
    const heartbeat = setInterval(() => response.write(': keep-alive\n\n'), HEARTBEAT_MS);
    try {
      for (let next = first; !next.done; next = await stream.next()) {
        const event = next.value;
        response.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
      }
    } finally {
      clearInterval(heartbeat);
      response.end();
    }
  }

  @controlRoute('pause', 'Pause: hosts in flight finish, no new batch starts until resumed')
  pause(
    @Param() params: RolloutParamsDto,
    @Body() body: RolloutControlDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RolloutResponse> {
    return this.control.control(params.id, 'pause', body, actor, principal);
  }

  @controlRoute('resume', 'Resume a paused rollout')
  resume(
    @Param() params: RolloutParamsDto,
    @Body() body: RolloutControlDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RolloutResponse> {
    return this.control.control(params.id, 'resume', body, actor, principal);
  }

  @controlRoute('approve', 'Approve the rest of a rollout after its canary batch (or before it ends)')
  approve(
    @Param() params: RolloutParamsDto,
    @Body() body: RolloutControlDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RolloutResponse> {
    return this.control.control(params.id, 'approve', body, actor, principal);
  }

  @controlRoute(
    'cancel',
    'Cancel: nothing new starts, queued tasks are cancelled, running ones end within their timeout',
  )
  cancel(
    @Param() params: RolloutParamsDto,
    @Body() body: RolloutControlDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RolloutResponse> {
    return this.control.control(params.id, 'cancel', body, actor, principal);
  }

  @controlRoute(
    'retry',
    'Run an aborted or cancelled rollout (or one with failed hosts) again: hosts already done are skipped',
  )
  retry(
    @Param() params: RolloutParamsDto,
    @Body() body: RolloutControlDto,
    @Actor() actor: RequestActor,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RolloutResponse> {
    return this.control.control(params.id, 'retry', body, actor, principal);
  }
}
