import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope, UnboundedTokenOnly } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodParams, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import {
  CreatedWebhookDto,
  CreatedWebhookResponse,
  CreateWebhookDto,
  ListWebhookDeliveriesQueryDto,
  ListWebhooksQueryDto,
  WebhookDeliveryDto,
  WebhookDeliveryPageDto,
  WebhookDeliveryParamsDto,
  WebhookDeliveryResponse,
  WebhookDto,
  WebhookPageDto,
  WebhookParamsDto,
  WebhookResponse,
} from './dto/webhook.dto';
import { WebhooksService } from './webhooks.service';

/**
 * Every route needs an unbounded admin token: a subscription receives events of every rollout and
 * operation in the fleet, whatever hosts or units the caller's token is limited to, and its URL
 * may carry a receiver's token.
 */
@ApiTags('webhooks')
@Controller('v1/webhooks')
@RequireScope('admin')
@UnboundedTokenOnly()
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post()
  @ApiOperation({
    operationId: 'createWebhook',
    summary: 'Subscribe a URL to rollout and operation events (unbounded admin tokens only)',
    description:
      'Each matching event is POSTed as JSON, signed: Drover-Signature: t=<unix>,v1=<hex HMAC-SHA256 of ' +
      '"<t>.<body>" keyed with the secret returned here, once>. Events go out one at a time in order, are ' +
      'retried with exponential backoff, and are delivered at least once: deduplicate on Drover-Event-Id.',
  })
  @ApiZodBody(CreateWebhookDto)
  @ApiZodResponse(201, 'Created; the secret is shown only in this response', CreatedWebhookDto)
  @ApiProblems(400, 401, 403, 409)
  create(@Body() body: CreateWebhookDto, @Actor() actor: RequestActor): Promise<CreatedWebhookResponse> {
    return this.webhooks.create(body, auditActorOf(actor));
  }

  @Get()
  @ApiOperation({ operationId: 'listWebhooks', summary: 'Webhook subscriptions, by name' })
  @ApiZodQuery(ListWebhooksQueryDto)
  @ApiZodResponse(200, 'A page of subscriptions ordered by name', WebhookPageDto)
  @ApiProblems(400, 401, 403)
  list(@Query() query: ListWebhooksQueryDto): Promise<Page<WebhookResponse>> {
    return this.webhooks.list(query);
  }

  @Get(':id')
  @ApiOperation({ operationId: 'getWebhook', summary: 'Read one webhook subscription' })
  @ApiZodParams(WebhookParamsDto)
  @ApiZodResponse(200, 'The subscription', WebhookDto)
  @ApiProblems(400, 401, 403, 404)
  get(@Param() params: WebhookParamsDto): Promise<WebhookResponse> {
    return this.webhooks.get(params.id);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({
    operationId: 'deleteWebhook',
    summary: 'Delete a webhook subscription and its delivery log',
    description: 'Nothing more is sent to it from then on (an attempt in flight may still arrive).',
  })
  @ApiZodParams(WebhookParamsDto)
  @ApiZodResponse(204, 'Deleted')
  @ApiProblems(400, 401, 403, 404)
  delete(@Param() params: WebhookParamsDto, @Actor() actor: RequestActor): Promise<void> {
    return this.webhooks.delete(params.id, auditActorOf(actor));
  }

  @Get(':id/deliveries')
  @ApiOperation({
    operationId: 'listWebhookDeliveries',
    summary: "A subscription's delivery log, newest first: status, attempts, last HTTP status, latency, error",
  })
  @ApiZodParams(WebhookParamsDto)
  @ApiZodQuery(ListWebhookDeliveriesQueryDto)
  @ApiZodResponse(200, 'A page of deliveries', WebhookDeliveryPageDto)
  @ApiProblems(400, 401, 403, 404)
  deliveries(
    @Param() params: WebhookParamsDto,
    @Query() query: ListWebhookDeliveriesQueryDto,
  ): Promise<Page<WebhookDeliveryResponse>> {
    return this.webhooks.deliveries(params.id, query);
  }

  @Post(':id/deliveries/:deliveryId/redeliver')
  @HttpCode(202)
  @ApiOperation({
    operationId: 'redeliverWebhook',
    summary: 'Send a delivered or failed event again (same event id, a fresh retry budget)',
    description: 'It goes ahead of the deliveries still waiting. A pending delivery is refused (409).',
  })
  @ApiZodParams(WebhookDeliveryParamsDto)
  @ApiZodResponse(202, 'Queued', WebhookDeliveryDto)
  @ApiProblems(400, 401, 403, 404, 409)
  redeliver(@Param() params: WebhookDeliveryParamsDto, @Actor() actor: RequestActor): Promise<WebhookDeliveryResponse> {
    return this.webhooks.redeliver(params.id, params.deliveryId, auditActorOf(actor));
  }
}
