import { z } from 'zod';
import { parseSelector, SelectorSyntaxError } from '@drover/protocol';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { unitNameSchema } from '../../common/validation/names';
import { createZodDto } from '../../common/validation/zod-dto';
import { RolloutDto, RolloutPlanDto, rolloutStrategySchema } from '../../rollouts/dto/rollout.dto';
import { POLICY_ACTIVITIES, POLICY_ENABLEMENTS } from '../policy-drift';

const POLICY_NAME = /^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$/;

const nameSchema = z
  .string()
  .regex(POLICY_NAME, { error: 'must be 1-100 characters [a-z0-9-], starting and ending with a letter or digit' })
  .describe('A unique name, e.g. web-nginx-running');

const selectorSchema = z
  .string()
  .max(4096)
  .superRefine((selector, context) => {
    try {
      parseSelector(selector);
    } catch (error) {
      if (!(error instanceof SelectorSyntaxError)) throw error;
      context.addIssue({ code: 'custom', message: error.message });
    }
  })
  .describe('Label selector of the hosts the policy holds on, e.g. role=web; "" means every host');

const enablementSchema = z
  .enum(POLICY_ENABLEMENTS)
  .nullable()
  .describe('The unit-file state the unit must have (exactly: enabled-runtime or static is not enabled); null: any');

const activitySchema = z
  .enum(POLICY_ACTIVITIES)
  .nullable()
  .describe('active: ActiveState active; inactive: not running (inactive or failed); null: any');

/** Both aspects together, wherever a policy is created or changed. */
function desiredProblems(
  desired: { enablement: string | null; activity: string | null },
  context: z.RefinementCtx,
): void {
  if (desired.enablement === null && desired.activity === null) {
    context.addIssue({ code: 'custom', path: ['enablement'], message: 'set enablement, activity or both' });
  }
  if (desired.enablement === 'masked' && desired.activity === 'active') {
    context.addIssue({ code: 'custom', path: ['activity'], message: 'a masked unit cannot be active' });
  }
}

const createShape = {
  name: nameSchema,
  selector: selectorSchema,
  unit: unitNameSchema,
  enablement: enablementSchema.default(null),
  activity: activitySchema.default(null),
  description: z.string().max(1000).default('').describe('Why the policy exists, for the people who read it'),
};

export class CreatePolicyDto extends createZodDto(
  z
    .strictObject(createShape)
    .superRefine(desiredProblems)
    .meta({
      example: {
        name: 'web-nginx',
        selector: 'role=web',
        unit: 'nginx.service',
        enablement: 'enabled',
        activity: 'active',
      },
    })
    .describe('A desired-state policy: on every host the selector matches, the unit must be as it says'),
) {}

export class UpdatePolicyDto extends createZodDto(
  z
    .strictObject({
      name: nameSchema.optional(),
      selector: selectorSchema.optional(),
      unit: unitNameSchema.optional(),
      enablement: enablementSchema.optional(),
      activity: activitySchema.optional(),
      description: z.string().max(1000).optional(),
    })
    .refine((patch) => Object.keys(patch).length > 0, { error: 'change at least one field' })
    .describe('The fields to change; the policy must still ask for something (enablement, activity or both)'),
) {}

export class PolicyParamsDto extends createZodDto(z.object({ id: z.uuid().describe('Policy id') })) {}

export class ListPoliciesQueryDto extends createZodDto(z.object({ ...pageQueryShape })) {}

export class PolicyDriftQueryDto extends createZodDto(z.object({ ...pageQueryShape })) {}

const policySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    selector: z.string(),
    unit: z.string(),
    enablement: z.enum(POLICY_ENABLEMENTS).nullable(),
    activity: z.enum(POLICY_ACTIVITIES).nullable(),
    description: z.string(),
    createdBy: z.string().describe('Name of the token that created it'),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .describe('A desired-state policy');

export class PolicyDto extends createZodDto(policySchema) {}

export class PolicyPageDto extends createZodDto(pageSchema(policySchema)) {}

const driftSchema = z
  .object({
    host: z.string().describe('Host name'),
    reasons: z
      .array(z.string())
      .describe('What is out of line, one per aspect, e.g. "unit-file state is disabled, policy wants enabled"'),
    unit: z
      .object({
        loadState: z.string(),
        activeState: z.string(),
        subState: z.string(),
        unitFileState: z.string().nullable(),
        refreshedAt: z.iso.datetime().describe('When drover last read it (discovery, agent report or task)'),
      })
      .nullable()
      .describe('The unit as drover last stored it; null when the host has none'),
  })
  .describe('A host the policy selects whose unit is out of line');

export class PolicyDriftPageDto extends createZodDto(
  pageSchema(driftSchema).describe('Hosts out of line, by host name, as of their last discovery'),
) {}

export class ReconcilePolicyDto extends createZodDto(
  rolloutStrategySchema
    .omit({ verb: true, unit: true, selector: true, onlyHosts: true })
    .extend({
      dryRun: z
        .boolean()
        .default(true)
        .describe('true (the default): return the plan only; false: start the rollout the plan shows'),
    })
    .describe(
      'How to roll the reconcile out (a rollout strategy without verb, unit, selector and onlyHosts, which come from the policy and its drift), and whether to start it',
    ),
) {}

export class ReconcileDto extends createZodDto(
  z
    .object({
      policy: z.string().describe('Policy name'),
      dryRun: z.boolean(),
      verb: z
        .string()
        .nullable()
        .describe(
          'The verb of this step (unmask, enable, disable, mask, start, stop); null when there is nothing to do',
        ),
      hosts: z.array(z.string()).describe('The hosts this step acts on'),
      later: z
        .array(z.object({ host: z.string(), steps: z.array(z.string()) }))
        .describe('Hosts out of line that need other steps (or more steps after this one): reconcile again after it'),
      unreconcilable: z
        .array(z.object({ host: z.string(), reason: z.string() }))
        .describe('Hosts out of line that no verb can fix (the unit is not on the host)'),
      plan: RolloutPlanDto.schema.nullable().describe('The rollout plan of this step; null when nothing to do'),
      rollout: RolloutDto.schema.nullable().describe('The rollout started (dryRun false); null otherwise'),
    })
    .describe('One reconcile step: a rollout of one verb on the hosts that need it next'),
) {}

export type CreatePolicyRequest = z.output<typeof CreatePolicyDto.schema>;
export type UpdatePolicyRequest = z.output<typeof UpdatePolicyDto.schema>;
export type ReconcilePolicyRequest = z.output<typeof ReconcilePolicyDto.schema>;
export type PolicyResponse = z.output<typeof policySchema>;
export type PolicyDriftItem = z.output<typeof driftSchema>;
export type ReconcileResponse = z.output<typeof ReconcileDto.schema>;
export type PageQuery = z.output<typeof ListPoliciesQueryDto.schema>;
