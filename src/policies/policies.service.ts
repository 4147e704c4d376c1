import { AUDIT_ACTION } from '@drover/protocol';
import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { auditActorOf } from '../audit/audit-actor';
import type { RequestActor } from '../common/auth/auth.decorators';
import type { Principal } from '../common/auth/principal';
import { RequestValidationError } from '../common/errors/domain-errors';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import type { RolloutStrategy } from '../rollouts/dto/rollout.dto';
import { RolloutsService } from '../rollouts/rollouts.service';
import { assertMayDeclare } from '../tokens/token-bounds';
import type {
  CreatePolicyRequest,
  PageQuery,
  PolicyDriftItem,
  PolicyResponse,
  ReconcilePolicyRequest,
  ReconcileResponse,
  UpdatePolicyRequest,
} from './dto/policy.dto';
import { HostUnitRow, PoliciesRepository, Policy, PolicyFields } from './policies.repository';
import { driftReasons, HostSteps, nextReconcileStep, reconcileSteps, unitOf, unitPresent } from './policy-drift';

const nameCursorSchema = z.object({ name: z.string() });

/** The most hosts one reconcile acts on: the most a rollout can hold. */
const MAX_RECONCILE_HOSTS = 10_000;

function toResponse(policy: Policy): PolicyResponse {
  return {
    id: policy.id,
    name: policy.name,
    selector: policy.selector,
    unit: policy.unit,
    enablement: policy.enablement,
    activity: policy.activity,
    description: policy.description,
    createdBy: policy.createdBy,
    createdAt: policy.createdAt.toISOString(),
    updatedAt: policy.updatedAt.toISOString(),
  };
}

function toDriftItem(policy: Policy, row: HostUnitRow): PolicyDriftItem {
  const unit = unitOf(row);
  return {
    host: row.hostName,
    reasons: driftReasons(policy, unit),
    unit: unit === null ? null : { ...unit, refreshedAt: unit.refreshedAt.toISOString() },
  };
}

/** The fields of a policy, as stored. */
function fieldsOf(policy: Policy): PolicyFields {
  const { name, selector, unit, enablement, activity, description } = policy;
  return { name, selector, unit, enablement, activity, description };
}

/**
 * What the patched policy would ask, checked as creation checks it (the DTO checks a creation's
 * body whole; a patch can only be judged against the row it changes).
 */
function patched(current: Policy, patch: UpdatePolicyRequest): PolicyFields {
  const next = { ...fieldsOf(current) };
  for (const [key, value] of Object.entries(patch) as [keyof PolicyFields, unknown][]) {
    if (value !== undefined) Object.assign(next, { [key]: value });
  }
  if (next.enablement === null && next.activity === null) {
    throw new RequestValidationError([
      { field: 'enablement', message: 'the policy must still set enablement, activity or both' },
    ]);
  }
  if (next.enablement === 'masked' && next.activity === 'active') {
    throw new RequestValidationError([{ field: 'activity', message: 'a masked unit cannot be active' }]);
  }
  return next;
}

/**
 * Desired-state policies: what they ask, which hosts are out of line (computed from the units
 * table, so as fresh as each host's last discovery, agent report or task), and reconciles, which
 * are ordinary rollouts of the verb the drift calls for, on the hosts out of line.
 */
@Injectable()
export class PoliciesService {
  constructor(
    private readonly policies: PoliciesRepository,
    private readonly rollouts: RolloutsService,
  ) {}

  async create(request: CreatePolicyRequest, actor: RequestActor, principal: Principal): Promise<PolicyResponse> {
    assertMayDeclare(principal, request.selector, request.unit);
    return toResponse(await this.policies.create(request, auditActorOf(actor)));
  }

  async get(id: string): Promise<PolicyResponse> {
    return toResponse(await this.policies.find(id));
  }

  async list(query: PageQuery): Promise<Page<PolicyResponse>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, nameCursorSchema).name;
    const rows = await this.policies.list(after, query.limit + 1);
    return toPage(rows, query.limit, toResponse, (row) => ({ name: row.name }));
  }

  /** A bounded token may change only a policy inside its bounds, and only into one inside them. */
  async update(
    id: string,
    patch: UpdatePolicyRequest,
    actor: RequestActor,
    principal: Principal,
  ): Promise<PolicyResponse> {
    const policy = await this.policies.update(
      id,
      (current) => {
        assertMayDeclare(principal, current.selector, current.unit);
        const next = patched(current, patch);
        assertMayDeclare(principal, next.selector, next.unit);
        return next;
      },
      auditActorOf(actor),
    );
    return toResponse(policy);
  }

  delete(id: string, actor: RequestActor, principal: Principal): Promise<void> {
    return this.policies.delete(
      id,
      (current) => assertMayDeclare(principal, current.selector, current.unit),
      auditActorOf(actor),
    );
  }

  async drift(id: string, query: PageQuery): Promise<Page<PolicyDriftItem>> {
    const policy = await this.policies.find(id);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, nameCursorSchema).name;
    const rows = await this.policies.outOfLine(policy, after, query.limit + 1);
    return toPage(
      rows,
      query.limit,
      (row) => toDriftItem(policy, row),
      (row) => ({ name: row.hostName }),
    );
  }

  /**
   * One reconcile step: the verb the drift calls for first (see nextReconcileStep), as a rollout
   * on exactly the hosts that need it next (the policy's selector narrowed by onlyHosts). A dry
   * run returns the rollout's plan; otherwise the rollout starts through the same path as
   * POST /v1/rollouts (scope, token bounds, overlap admission), audited as rollout.create and
   * policy.reconcile together.
   */
  async reconcile(
    id: string,
    request: ReconcilePolicyRequest,
    actor: RequestActor,
    principal: Principal,
  ): Promise<ReconcileResponse> {
    const policy = await this.policies.find(id);
    const rows = await this.policies.outOfLine(policy, undefined, MAX_RECONCILE_HOSTS);
    const unreconcilable: { host: string; reason: string }[] = [];
    const needing: HostSteps[] = [];
    for (const row of rows) {
      const unit = unitOf(row);
      if (!unitPresent(unit)) {
        unreconcilable.push({ host: row.hostName, reason: driftReasons(policy, unit).join('; ') });
      } else {
        needing.push({ name: row.hostName, steps: reconcileSteps(policy, unit) });
      }
    }
    const step = nextReconcileStep(needing);
    const { dryRun, ...rollout } = request;
    const answer = { policy: policy.name, dryRun, unreconcilable };
    if (step === null) return { ...answer, verb: null, hosts: [], later: [], plan: null, rollout: null };
    const strategy: RolloutStrategy = {
      ...rollout,
      verb: step.verb,
      unit: policy.unit,
      selector: policy.selector,
      onlyHosts: step.hosts,
    };
    const stepAnswer = {
      ...answer,
      verb: step.verb,
      hosts: step.hosts,
      later: step.later.map((host) => ({ host: host.name, steps: host.steps })),
    };
    if (dryRun) return { ...stepAnswer, plan: await this.rollouts.plan(strategy, principal), rollout: null };
    const started = await this.rollouts.create(strategy, undefined, actor, principal, {
      action: AUDIT_ACTION.policyReconcile,
      unit: policy.unit,
      parameters: { policyId: policy.id, name: policy.name, verb: step.verb, hosts: step.hosts },
    });
    return { ...stepAnswer, plan: null, rollout: started.rollout };
  }
}
