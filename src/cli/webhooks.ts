import { allPages, DroverClient, Schemas, unwrap } from '../client';
import { renderTable } from './table';

export class WebhooksUsageError extends Error {}

export interface WebhookOptions {
  events?: string | undefined;
  description?: string | undefined;
  status?: string | undefined;
  json?: boolean | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STATUSES = ['pending', 'delivered', 'failed'] as const;

function listWebhooks(api: DroverClient): Promise<Schemas['Webhook'][]> {
  return allPages(async (cursor) =>
    unwrap(await api.GET('/v1/webhooks', { params: { query: { cursor, limit: 1000 } } })),
  );
}

/** A subscription's id from its id or its name. */
async function resolveId(api: DroverClient, nameOrId: string): Promise<string> {
  if (UUID.test(nameOrId)) return nameOrId;
  const found = (await listWebhooks(api)).find((webhook) => webhook.name === nameOrId);
  if (!found) throw new WebhooksUsageError(`no webhook named '${nameOrId}'`);
  return found.id;
}

function printWebhooks(webhooks: Schemas['Webhook'][]): void {
  process.stdout.write(
    renderTable(
      ['NAME', 'ID', 'URL', 'EVENTS', 'PENDING', 'DELIVERED', 'FAILED'],
      webhooks.map((webhook) => [
        webhook.name,
        webhook.id,
        webhook.url,
        webhook.events.join(','),
        String(webhook.deliveries.pending),
        String(webhook.deliveries.delivered),
        String(webhook.deliveries.failed),
      ]),
    ),
  );
}

function printDeliveries(deliveries: Schemas['WebhookDelivery'][]): void {
  process.stdout.write(
    renderTable(
      ['DELIVERY', 'EVENT', 'TYPE', 'STATUS', 'ATTEMPTS', 'HTTP', 'MS', 'LAST ATTEMPT', 'ERROR'],
      deliveries.map((delivery) => [
        delivery.id,
        delivery.eventId,
        delivery.eventType,
        delivery.status === 'pending' ? `pending (next ${delivery.nextAttemptAt ?? '-'})` : delivery.status,
        String(delivery.attempts),
        delivery.lastStatusCode === null ? '-' : String(delivery.lastStatusCode),
        delivery.lastLatencyMs === null ? '-' : String(delivery.lastLatencyMs),
        delivery.lastAttemptAt ?? '-',
        delivery.lastError ?? '',
      ]),
    ),
  );
}

/** `drover webhooks ...`: subscriptions and their delivery log. */
export async function webhooksCommand(api: DroverClient, args: string[], values: WebhookOptions): Promise<void> {
  const [action, first, second] = args;
  const print = (value: unknown, human: () => void) =>
    values.json ? process.stdout.write(`${JSON.stringify(value, null, 2)}\n`) : human();
  if (action === 'list') {
    const webhooks = await listWebhooks(api);
    print(webhooks, () => printWebhooks(webhooks));
  } else if (action === 'create' && first && second) {
    if (!values.events)
      throw new WebhooksUsageError('webhooks create needs --events, e.g. --events rollout.*,operation.failed');
    const created = unwrap(
      await api.POST('/v1/webhooks', {
        body: {
          name: first,
          url: second,
          events: values.events.split(',').map((pattern) => pattern.trim()),
          ...(values.description === undefined ? {} : { description: values.description }),
        },
      }),
    );
    print(created, () => {
      printWebhooks([created]);
      process.stdout.write(`\nsigning secret (shown only now; verify Drover-Signature with it):\n${created.secret}\n`);
    });
  } else if (action === 'deliveries' && first) {
    const status = values.status;
    if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
      throw new WebhooksUsageError(`--status is one of ${STATUSES.join(', ')}`);
    }
    const id = await resolveId(api, first);
    const page = unwrap(
      await api.GET('/v1/webhooks/{id}/deliveries', {
        params: {
          path: { id },
          query: { limit: 100, ...(status ? { status: status as (typeof STATUSES)[number] } : {}) },
        },
      }),
    );
    print(page.items, () => printDeliveries(page.items));
  } else if (action === 'redeliver' && first && second) {
    const id = await resolveId(api, first);
    const delivery = unwrap(
      await api.POST('/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver', {
        params: { path: { id, deliveryId: second } },
      }),
    );
    print(delivery, () => process.stdout.write(`delivery ${delivery.id} (event ${delivery.eventId}) queued again\n`));
  } else if (action === 'delete' && first) {
    const id = await resolveId(api, first);
    unwrap(await api.DELETE('/v1/webhooks/{id}', { params: { path: { id } } }));
    process.stdout.write(`webhook ${first} deleted\n`);
  } else {
    throw new WebhooksUsageError(
      'webhooks takes: list | create NAME URL --events PATTERNS | deliveries NAME [--status S] | redeliver NAME DELIVERY_ID | delete NAME',
    );
  }
}
