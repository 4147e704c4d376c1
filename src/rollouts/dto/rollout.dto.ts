import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import {
  labelKeyProblem,
  labelValueProblem,
  ROLLOUT_HOST_STATES,
  ROLLOUT_STATUSES,
  rolloutEventSchema,
  unitGlobProblem,
  VERBS,
} from '@drover/protocol';
import { createZodDto, type ZodDtoClass } from '../../common/validation/zod-dto';
import { daemonReloadSchema } from '../../operations/dto/operation.dto';
import { probeNameSchema } from '../../probes/dto/probe.dto';
import { normaliseUnitName, UNIT_TYPES } from '@drover/systemd';
import { hostNameSchema, unitNameSchema } from '../../common/validation/names';
import { globLiteralBounds, isUnitGlob } from '../planner';

export const ON_OVERLAP = ['queue', 'reject', 'supersede'] as const;
const onOverlapSchema = z.enum(ON_OVERLAP);

/** The most hosts one request can hold (the bulk-upsert limit), so no count above it means anything. */
const MAX_HOSTS = 10_000;

const PERCENT = /^(100|[1-9][0-9]?)%$/;
const PERCENT_OR_ZERO = /^(100|[1-9]?[0-9])%$/;

/** A host count, or a whole-number percentage of the rollout's hosts (rounded up, at least 1). */
function amountSchema(minimum: 0 | 1) {
  const pattern = minimum === 0 ? PERCENT_OR_ZERO : PERCENT;
  return z.union([
    z.number().int().min(minimum).max(MAX_HOSTS).describe('Hosts'),
    z
      .string()
      .regex(pattern, { error: `must be a whole-number percentage from "${minimum}%" to "100%"` })
      .describe('A percentage of the hosts of the rollout, e.g. "25%"'),
  ]);
}

const verbSchema = z
  .enum(VERBS)
  .exclude(['status'])
  .default('restart')
  .describe('The systemctl verb applied to the unit on each host (status only reads, so it is no rollout)');

const TYPE_SUFFIX = new RegExp(`^\\.(${UNIT_TYPES.join('|')})$`);

const unitSchema = z
  .string()
  // A glob must name its type already (below); a name is read as systemctl and unitNameSchema read it.
  .overwrite((unit) => (isUnitGlob(unit) ? unit : normaliseUnitName(unit)))
  .superRefine((unit, context) => {
    if (!isUnitGlob(unit)) {
      const parsed = unitNameSchema.safeParse(unit);
      for (const issue of parsed.error?.issues ?? []) context.addIssue({ code: 'custom', message: issue.message });
      return;
    }
    const problem = unitGlobProblem(unit);
    if (problem) context.addIssue({ code: 'custom', message: problem });
    // A glob such as `*` would act on every unit of a host; naming the type keeps it deliberate.
    else if (!TYPE_SUFFIX.test(globLiteralBounds(unit).suffix))
      context.addIssue({ code: 'custom', message: `a glob must end with a literal unit type such as .service` });
  })
  .describe(
    'The unit: a name such as `nginx.service` (`nginx` means nginx.service, as for systemctl), or a glob such as `api-*.service` (`*`, `?`, `[...]`, ending in a ' +
      'literal type) matched against the units drover last discovered on each host; every matching unit of a host ' +
      'is acted on, and hosts without one are skipped (listed with the reason). For daemon-reload, the unit whose ' +
      'availability and health gate the rollout.',
  );

const orderSchema = z
  .discriminatedUnion('by', [
    z.strictObject({ by: z.literal('name') }).describe('By host name'),
    z
      .strictObject({
        by: z.literal('shuffle'),
        seed: z.number().int().min(0).max(0xffff_ffff).describe('The same seed and hosts give the same order'),
      })
      .describe('A pseudo-random order, reproducible from its seed'),
    z
      .strictObject({
        by: z.literal('label'),
        key: z.string().describe('Label key'),
        ranks: z.array(z.string()).min(1).max(100).describe('Label values, first goes first'),
      })
      .superRefine((order, context) => {
        const keyProblem = labelKeyProblem(order.key);
        if (keyProblem) context.addIssue({ code: 'custom', path: ['key'], message: keyProblem });
        const seen = new Map<string, number>();
        order.ranks.forEach((value, index) => {
          const first = seen.get(value);
          const problem = labelValueProblem(value) ?? (first === undefined ? null : `duplicates order.ranks[${first}]`);
          if (problem) context.addIssue({ code: 'custom', path: ['ranks', index], message: problem });
          if (first === undefined) seen.set(value, index);
        });
      })
      .describe(
        'Hosts whose `key` label has a value listed in `ranks` go first, in the order of `ranks`; the others last; ' +
          'ties by host name',
      ),
  ])
  .prefault({ by: 'name' })
  .describe('The order hosts are acted in (default by name)');

const batchesSchema = z
  .strictObject({
    size: amountSchema(1).optional().describe('Every batch has this size'),
    sizes: z
      .array(amountSchema(1))
      .min(1)
      .max(100)
      .optional()
      .describe('Sizes of the first batches (canary first); the last one repeats until every host is done'),
  })
  .superRefine((batches, context) => {
    if ((batches.size === undefined) === (batches.sizes === undefined))
      context.addIssue({ code: 'custom', message: 'give exactly one of size and sizes' });
  })
  .prefault({ size: 1 })
  .describe(
    'How many hosts are acted on at once: `{ "size": 2 }` or `{ "sizes": [1, 5, "25%"] }`. A count, or a ' +
      'percentage of the hosts of the rollout rounded up (at least 1). Default: one host at a time.',
  );

const timeoutSchema = z.number().int().min(100).max(60_000).default(2_000).describe('Milliseconds');
const portSchema = z.number().int().min(1).max(65535);

const probeSchema = z.discriminatedUnion('type', [
  z
    .strictObject({
      type: z.literal('http'),
      port: portSchema,
      path: z
        .string()
        .max(1024)
        .regex(/^\/[\x21-\x7e]*$/, { error: 'must start with / and contain only printable ASCII without spaces' })
        .default('/'),
      expectStatus: z.number().int().min(100).max(599).default(200),
      timeoutMs: timeoutSchema,
    })
    .describe('GET http://<host address>:<port><path> must answer expectStatus'),
  z
    .strictObject({ type: z.literal('tcp'), port: portSchema, timeoutMs: timeoutSchema })
    .describe('<host address>:<port> must accept a TCP connection'),
  z
    .strictObject({ type: z.literal('command'), name: probeNameSchema })
    .describe(
      'A command of the probe catalogue (GET /v1/probes), run on the host as its entry says; exit 0 means healthy. ' +
        'A rollout names catalogue commands only: an argv of its own would let any operate token run anything as root',
    ),
]);

const healthGateSchema = z
  .strictObject({
    minHealthyTimeMs: z
      .number()
      .int()
      .min(0)
      .max(3_600_000)
      .default(10_000)
      .describe('How long each host of a batch must stay healthy (unit active, probes passing) before the next'),
    timeoutMs: z
      .number()
      .int()
      .min(1_000)
      .max(3_600_000)
      .default(60_000)
      .describe(
        'How long a host may take, beyond minHealthyTimeMs, to start passing its checks after its action; a host ' +
          'not healthy by then fails its gate. A unit that stops, changes MainPID or restarts (NRestarts grows) ' +
          'during the gate fails it at once.',
      ),
    probes: z.array(probeSchema).max(8).default([]).describe('Checks besides the unit being active'),
  })
  .prefault({})
  .describe('When a batch counts as healthy');

export const rolloutStrategySchema = z
  .strictObject({
    verb: verbSchema,
    unit: unitSchema,
    selector: z
      .string()
      .max(4096)
      .describe('Label selector choosing the hosts (must match at least one); "" selects every host'),
    onlyHosts: z
      .array(hostNameSchema)
      .min(1)
      .max(MAX_HOSTS)
      .refine((names) => new Set(names).size === names.length, { error: 'must not repeat a host' })
      .optional()
      .describe(
        'Only these hosts, by name, among those the selector matches (a name it does not match is a problem of ' +
          'the plan); e.g. the hosts a policy reconcile finds out of line',
      ),
    order: orderSchema,
    batches: batchesSchema,
    pauseBetweenBatchesMs: z
      .number()
      .int()
      .min(0)
      .max(86_400_000)
      .default(0)
      .describe('Wait after a batch is healthy before starting the next'),
    approveAfterCanary: z
      .boolean()
      .default(false)
      .describe('Stop after the first batch until someone approves the rest'),
    maxFailures: amountSchema(0)
      .default(0)
      .describe(
        'Failure budget, a count or a percentage of the hosts of the rollout: the rollout aborts when the number ' +
          'of failed hosts EXCEEDS it. 0 (the default) aborts at the first failure; 1 tolerates one and aborts at ' +
          'the second.',
      ),
    maxUnavailable: amountSchema(1)
      .optional()
      .describe(
        'The most hosts whose unit may be down at once, a count or a percentage of the hosts of the rollout, ' +
          'counting hosts whose unit is already not active (or never discovered) when the rollout starts; batches ' +
          'are cut to fit. Default: no limit beyond the batch size.',
      ),
    healthGate: healthGateSchema,
    taskTimeoutMs: z
      .number()
      .int()
      .min(1_000)
      .max(3_600_000)
      .optional()
      .describe('Upper bound for the command on each host (default: the server setting SSH_COMMAND_TIMEOUT_MS)'),
    deadlineMs: z
      .number()
      .int()
      .min(1_000)
      .max(7 * 86_400_000)
      .optional()
      .describe('Upper bound for the whole rollout, from its creation (time spent queued counts)'),
    daemonReload: daemonReloadSchema,
    onOverlap: onOverlapSchema
      .default('queue')
      .describe(
        'When an unfinished rollout already acts on some of these hosts and units: `queue` (the default) waits ' +
          'for it and every overlapping rollout admitted before this one (status `queued`, first come first ' +
          'served); `reject` refuses the request with 409 naming it; `supersede` cancels it (its hosts in flight ' +
          'finish their action, none is left mid-action) and starts once it came to rest, as a new rollout of a ' +
          'Kubernetes Deployment replaces the old one.',
      ),
  })
  .meta({
    example: {
      verb: 'restart',
      unit: 'api-*.service',
      selector: 'env=prod,role=api',
      order: { by: 'label', key: 'zone', ranks: ['eu-west-1a', 'eu-west-1b'] },
      batches: { sizes: [1, 5, '25%'] },
      pauseBetweenBatchesMs: 30_000,
      approveAfterCanary: true,
      maxFailures: '10%',
      maxUnavailable: 3,
      healthGate: {
        minHealthyTimeMs: 20_000,
        timeoutMs: 60_000,
        probes: [{ type: 'http', port: 8080, path: '/healthz', expectStatus: 200, timeoutMs: 2_000 }],
      },
    },
  })
  .describe('A verb applied to a unit across the hosts a selector matches, batch after batch');

export class RolloutStrategyDto extends createZodDto(rolloutStrategySchema) {}

export const overlapSchema = z
  .object({
    rolloutId: z.uuid(),
    status: z.string().describe('Its status now'),
    hosts: z.array(z.string()).describe('The hosts both act on'),
    units: z.array(z.string()).describe('The units both act on there'),
  })
  .describe('An unfinished rollout acting on some of the same hosts and units');

const hostPlanSchema = z.object({
  name: z.string(),
  batch: z.number().int().nullable().describe('Index of the batch acting on this host; null when nothing can start'),
  units: z.array(z.string()).describe('The units acted on there (several when a glob matches several)'),
  unitState: z
    .string()
    .describe(
      'ActiveState as last discovered (active, inactive, failed, activating, ...); with several units the first ' +
        'that is not active; `unknown` when drover has not discovered the unit on the host',
    ),
  available: z.boolean().describe('Whether every unit is active now; unknown counts as unavailable'),
  needsDaemonReload: z
    .boolean()
    .describe(
      "Whether a unit's files changed on disk since systemd read them, as last discovered (NeedDaemonReload=yes)",
    ),
});

export class RolloutPlanDto extends createZodDto(
  z.object({
    ok: z.boolean().describe('Whether the rollout could start as planned'),
    problems: z.array(z.string()).describe('Why it could not, in words'),
    verb: z.string(),
    unit: z.string(),
    selector: z.string(),
    total: z.number().int().describe('Hosts the rollout acts on (selected and not skipped)'),
    hosts: z.array(hostPlanSchema).describe('In the order they would be acted on'),
    skipped: z
      .array(z.object({ name: z.string(), reason: z.string() }))
      .describe('Selected hosts without a unit matching a unit glob'),
    alreadyUnavailable: z.array(z.string()).describe('Hosts whose unit is not active (or unknown) now'),
    daemonReload: z
      .object({
        policy: z.enum(['refuse', 'auto', 'ignore']),
        hosts: z.array(z.string()).describe('Hosts where a unit changed on disk, as last discovered'),
        effect: z.string().describe('What the policy does on those hosts, in words'),
      })
      .describe('The daemon-reload interlock on this rollout (each task checks again live before acting)'),
    batches: z.array(
      z.object({ index: z.number().int(), size: z.number().int(), hosts: z.array(z.string()) }).describe('A batch'),
    ),
    failureBudget: z
      .object({
        maxFailures: z.number().int().describe('Failed hosts tolerated'),
        abortsAtFailure: z.number().int().describe('The failure that aborts the rollout (maxFailures + 1)'),
      })
      .describe('maxFailures as a number of hosts'),
    maxUnavailable: z.object({
      allowed: z.number().int().nullable().describe('maxUnavailable as a number of hosts; null when not limited'),
      alreadyDown: z.number().int().describe('Hosts whose unit is not active (or never discovered) now'),
      effectiveBatchCap: z
        .number()
        .int()
        .nullable()
        .describe(
          'allowed - alreadyDown: how many hosts whose unit is up may go down at once while the hosts already ' +
            'down are (those are acted on first and take no room: acting on them cannot take anything more ' +
            'down); null when not limited',
        ),
    }),
    healthGate: z.object({
      minHealthyTimeMs: z.number().int(),
      timeoutMs: z.number().int(),
      probes: z.array(probeSchema),
    }),
    probeCommands: z
      .array(
        z.object({
          name: z.string(),
          argv: z.array(z.string()).describe('What runs on each host (as the catalogue says now)'),
          timeoutMs: z.number().int(),
        }),
      )
      .describe('The catalogue commands the health gate runs on each host'),
    pauseBetweenBatchesMs: z.number().int(),
    approveAfterCanary: z.boolean(),
    taskTimeoutMs: z.number().int(),
    deadlineMs: z.number().int().nullable(),
    estimatedMinimumDurationMs: z
      .number()
      .int()
      .describe(
        'A lower bound: each batch healthy for minHealthyTimeMs plus the pauses; excludes the commands and approval',
      ),
    onOverlap: onOverlapSchema,
    overlaps: z
      .array(overlapSchema)
      .describe(
        'Unfinished rollouts acting on some of the same hosts and units now: started now, this rollout would ' +
          'queue behind them, be refused or supersede them, as onOverlap says',
      ),
  }),
) {}

export type RolloutStrategy = z.output<typeof rolloutStrategySchema>;
export type RolloutPlan = z.output<typeof RolloutPlanDto.schema>;

const rolloutStatusSchema = z
  .enum(ROLLOUT_STATUSES)
  .describe(
    'queued (waits for overlapping rollouts admitted before it: blockedBy); running; paused (in-flight hosts ' +
      'finish, nothing new starts); awaiting_approval (after the canary batch); ' +
      'succeeded (every host done, failures within the budget); aborted (failure budget exceeded or deadline ' +
      'passed); cancelled',
  );

const rolloutHostSchema = z.object({
  name: z.string(),
  position: z.number().int(),
  units: z.array(z.string()),
  state: z
    .enum(ROLLOUT_HOST_STATES)
    .describe(
      'pending; acting (its task runs); gating (acted, health gate running); succeeded; failed (action or gate); ' +
        'interrupted (acted, but the rollout ended before its gate passed: a retry re-checks it without acting); ' +
        'cancelled (never acted on)',
    ),
  batch: z.number().int().nullable(),
  reason: z.string().nullable(),
  operationId: z.uuid().nullable().describe('The operation whose task acted on it (GET /v1/operations/{id})'),
  healthySince: z.iso.datetime().nullable(),
  lastCheck: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe('The last health check: healthy, problems, unit states'),
  finishedAt: z.iso.datetime().nullable(),
});

const rolloutBatchSchema = z.object({
  index: z.number().int(),
  run: z.number().int().describe('1 for the first run, 2 after the first retry, ...'),
  hosts: z.array(z.string()),
  unavailableAtStart: z
    .number()
    .int()
    .describe('Hosts of the rollout whose unit was not active when the batch was planned (checked live)'),
  operationId: z.uuid(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
});

const hostCountsSchema = z
  .object(
    Object.fromEntries(ROLLOUT_HOST_STATES.map((state) => [state, z.number().int()])) as Record<
      (typeof ROLLOUT_HOST_STATES)[number],
      z.ZodNumber
    >,
  )
  .describe('Hosts per state');

export const rolloutSummarySchema = z.object({
  id: z.uuid(),
  verb: z.string(),
  unit: z.string(),
  selector: z.string(),
  status: rolloutStatusSchema,
  reason: z.string().nullable().describe('Why it ended, or what it waits for'),
  blockedBy: z.array(z.uuid()).describe('While queued: the rollouts it waits for'),
  total: z.number().int(),
  maxFailures: z.number().int().describe('Failed hosts tolerated; one more aborts the rollout'),
  maxUnavailable: z.number().int().nullable(),
  runs: z.number().int(),
  counts: hostCountsSchema,
  idempotencyKey: z.string().nullable(),
  requestedBy: z.string(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
});

export class RolloutDto extends createZodDto(
  rolloutSummarySchema
    .extend({
      strategy: rolloutStrategySchema,
      approvedAt: z.iso.datetime().nullable(),
      approvedBy: z.string().nullable(),
      deadlineAt: z.iso.datetime().nullable(),
      nextBatchAt: z.iso.datetime().nullable(),
      hosts: z.array(rolloutHostSchema).describe('In rollout order'),
      batches: z.array(rolloutBatchSchema),
    })
    .describe('A rollout with its hosts and batches'),
) {}

export class RolloutPageDto extends createZodDto(pageSchema(rolloutSummarySchema)) {}

export class RolloutParamsDto extends createZodDto(z.object({ id: z.uuid() })) {}

export class ListRolloutsQueryDto extends createZodDto(
  z.object({
    status: rolloutStatusSchema.optional(),
    verb: z.string().max(32).optional(),
    unit: unitSchema.optional().describe('The unit (or glob) as the rollout recorded it (`nginx` finds nginx.service)'),
    ...pageQueryShape,
  }),
) {}

export class RolloutControlDto extends createZodDto(
  z
    .strictObject({
      reason: z.string().max(1000).optional().describe('Recorded in the audit trail and the rollout'),
      onOverlap: onOverlapSchema
        .exclude(['supersede'])
        .optional()
        .describe(
          'Retry only. When an unfinished rollout admitted since acts on some of the same hosts and units: ' +
            '`reject` (the default: 409 naming it; the newer rollout stands for the newer intent, and repeating ' +
            'the older one after it could undo it, e.g. mask after unmask) or `queue` (run the retry after it)',
        ),
    })
    .prefault({}),
) {}

// A union has no class shape of its own: the DTO is typed as any object, for the document only.
export class RolloutEventDto extends (createZodDto(rolloutEventSchema) as ZodDtoClass<z.ZodType<object>>) {}

export class RolloutEventsQueryDto extends createZodDto(
  z.object({
    after: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .describe('Send only events after this id (the Last-Event-ID header does the same and wins)'),
  }),
) {}

export type RolloutResponse = z.output<typeof RolloutDto.schema>;
export type RolloutSummary = z.output<typeof rolloutSummarySchema>;
export type ListRolloutsQuery = z.output<typeof ListRolloutsQueryDto.schema>;
export type Probe = z.output<typeof probeSchema>;
export type OnOverlap = (typeof ON_OVERLAP)[number];
export type RolloutOverlap = z.output<typeof overlapSchema>;
