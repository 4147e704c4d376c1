import { ROLLOUT_CONTROLS, type RolloutControl } from './states';
import { VERBS, type Verb } from './verbs';

/**
 * Every action the audit trail records (`audit_events.action`), named once: the code that records an
 * event takes its action from here, and auditors filter by these names.
 */
export const AUDIT_ACTION = {
  /** An agent presented a join token and was registered (or re-registered) for its host. */
  agentEnroll: 'agent.enroll',
  agentRevoke: 'agent.revoke',
  agentRotateKey: 'agent.rotate_key',
  agentJoinTokenCreate: 'agent.join_token_create',
  agentJoinTokenRevoke: 'agent.join_token_revoke',
  /** A request refused (403) after its token was accepted. */
  accessDenied: 'access.denied',
  sudoersGenerate: 'access.sudoers_generate',
  polkitGenerate: 'access.polkit_generate',
  /** Refused bearer tokens, counted and coalesced per token prefix and source. */
  authFailed: 'auth.failed',
  hostCreate: 'host.create',
  hostUpdate: 'host.update',
  hostDelete: 'host.delete',
  hostBulkUpsert: 'host.bulk_upsert',
  hostTrustFirstKey: 'host.trust_first_key',
  hostDiscover: 'host.discover',
  operationCreate: 'operation.create',
  policyCreate: 'policy.create',
  policyUpdate: 'policy.update',
  policyDelete: 'policy.delete',
  /** A rollout started to bring a policy's drifted hosts in line (recorded with its rollout.create). */
  policyReconcile: 'policy.reconcile',
  probeCreate: 'probe.create',
  probeUpdate: 'probe.update',
  probeDelete: 'probe.delete',
  rolloutCreate: 'rollout.create',
  /** A rollout came to its end (succeeded, aborted, cancelled). */
  rolloutFinish: 'rollout.finish',
  tokenCreate: 'token.create',
  tokenRevoke: 'token.revoke',
  webhookCreate: 'webhook.create',
  webhookDelete: 'webhook.delete',
  /** A failed (or any) delivery sent again by hand. */
  webhookRedeliver: 'webhook.redeliver',
} as const;

/** A task's verb on a unit: `unit.restart`, `unit.mask`, ... */
export function unitAction(verb: Verb): `unit.${Verb}` {
  return `unit.${verb}`;
}

/** A rollout steered: `rollout.pause`, ..., `rollout.retry`. */
export function rolloutControlAction(control: RolloutControl): `rollout.${RolloutControl}` {
  return `rollout.${control}`;
}

export type AuditAction =
  | (typeof AUDIT_ACTION)[keyof typeof AUDIT_ACTION]
  | ReturnType<typeof unitAction>
  | ReturnType<typeof rolloutControlAction>;

export const AUDIT_ACTIONS: readonly AuditAction[] = [
  ...Object.values(AUDIT_ACTION),
  ...VERBS.map(unitAction),
  ...ROLLOUT_CONTROLS.map(rolloutControlAction),
];
