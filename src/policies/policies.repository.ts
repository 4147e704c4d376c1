import { AUDIT_ACTION, parseSelector } from '@drover/protocol';
import { Injectable } from '@nestjs/common';
import { AuditActor, auditActorColumns } from '../audit/audit-actor';
import { ResourceConflictError, ResourceNotFoundError } from '../common/errors/domain-errors';
import { Policy, Prisma } from '../generated/prisma/client';
import { isUniqueViolation } from '../infra/prisma/prisma-errors';
import { PrismaService } from '../infra/prisma/prisma.service';
import { selectorSql } from '../infra/prisma/selector-sql';
import { IN_LINE_ACTIVE_STATES, type JoinedUnit } from './policy-drift';

export type { Policy };

export type PolicyFields = Pick<Policy, 'name' | 'selector' | 'unit' | 'enablement' | 'activity' | 'description'>;

/** A host a policy selects, with its unit as last stored (null columns: the host has no such unit). */
export interface HostUnitRow extends JoinedUnit {
  hostId: string;
  hostName: string;
}

/** Hosts one evaluation of a policy records as out of line, at most (a rollout holds as many). */
const MAX_EVALUATED_HOSTS = 10_000;

function audited(policy: PolicyFields & { id: string }) {
  return {
    id: policy.id,
    name: policy.name,
    selector: policy.selector,
    unit: policy.unit,
    enablement: policy.enablement,
    activity: policy.activity,
  };
}

/** A policy's create, update or delete as its audit event (in the change's transaction). */
async function recordPolicyChange(
  tx: Prisma.TransactionClient,
  actor: AuditActor,
  action: string,
  change: { before?: Policy; after?: Policy },
): Promise<void> {
  const policy = (change.after ?? change.before)!;
  await tx.auditEvent.create({
    data: {
      ...auditActorColumns(actor),
      action,
      result: 'succeeded',
      unit: policy.unit,
      parameters: { name: policy.name },
      ...(change.before ? { before: audited(change.before) } : {}),
      ...(change.after ? { after: audited(change.after) } : {}),
    },
  });
}

/**
 * The SQL twin of driftReasons (policy-drift.ts), so a page of drift and the metric count only
 * hosts out of line: no unit (or not-found), a unit-file state other than the one wanted, or an
 * ActiveState outside those IN_LINE_ACTIVE_STATES lists for the activity wanted.
 */
function outOfLineSql(policy: Pick<Policy, 'enablement' | 'activity'>): Prisma.Sql {
  const enablement =
    policy.enablement === null
      ? Prisma.sql`FALSE`
      : Prisma.sql`u.unit_file_state IS DISTINCT FROM ${policy.enablement}::text`;
  const activity =
    policy.activity === null
      ? Prisma.sql`FALSE`
      : Prisma.sql`u.active_state <> ALL(${[...IN_LINE_ACTIVE_STATES[policy.activity]]}::text[])`;
  return Prisma.sql`(u.id IS NULL OR u.load_state = 'not-found' OR ${enablement} OR ${activity})`;
}

/** The columns of a HostUnitRow. */
const HOST_UNIT_COLUMNS = Prisma.sql`h.id::text AS "hostId", h.name AS "hostName", u.load_state AS "loadState",
  u.active_state AS "activeState", u.sub_state AS "subState", u.unit_file_state AS "unitFileState",
  u.refreshed_at AS "refreshedAt"`;

function unitOnHostsSql(policy: Pick<Policy, 'selector' | 'unit'>): Prisma.Sql {
  return Prisma.sql`
    FROM hosts h LEFT JOIN units u ON u.host_id = h.id AND u.name = ${policy.unit}
    WHERE ${selectorSql(parseSelector(policy.selector), Prisma.sql`h.labels`)}`;
}

@Injectable()
export class PoliciesRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Creates a policy with its `policy.create` audit event. */
  async create(input: PolicyFields, actor: AuditActor): Promise<Policy> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const policy = await tx.policy.create({ data: { ...input, createdBy: actor.actorName } });
        await recordPolicyChange(tx, actor, AUDIT_ACTION.policyCreate, { after: policy });
        return policy;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ResourceConflictError('policy', 'name', input.name);
      throw error;
    }
  }

  async find(id: string): Promise<Policy> {
    const policy = await this.prisma.policy.findUnique({ where: { id } });
    if (!policy) throw new ResourceNotFoundError('policy', id);
    return policy;
  }

  /** Up to `take` policies ordered by name, strictly after `afterName`. */
  list(afterName: string | undefined, take: number): Promise<Policy[]> {
    return this.prisma.policy.findMany({
      where: afterName === undefined ? {} : { name: { gt: afterName } },
      orderBy: { name: 'asc' },
      take,
    });
  }

  /** Every policy, for the metric. */
  all(): Promise<Policy[]> {
    return this.prisma.policy.findMany({ orderBy: { name: 'asc' } });
  }

  /**
   * Changes a policy as `change` decides from the row locked as it is now (so two changes never
   * both judge the same old row), with its `policy.update` audit event (before and after).
   */
  async update(id: string, change: (current: Policy) => PolicyFields, actor: AuditActor): Promise<Policy> {
    let name = '';
    try {
      return await this.prisma.$transaction(async (tx) => {
        const [locked] = await tx.$queryRaw<
          { id: string }[]
        >`SELECT id::text FROM policies WHERE id = ${id}::uuid FOR UPDATE`;
        if (!locked) throw new ResourceNotFoundError('policy', id);
        const current = await tx.policy.findUniqueOrThrow({ where: { id } });
        const fields = change(current);
        name = fields.name;
        const policy = await tx.policy.update({ where: { id }, data: { ...fields, updatedAt: new Date() } });
        await recordPolicyChange(tx, actor, AUDIT_ACTION.policyUpdate, { before: current, after: policy });
        return policy;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ResourceConflictError('policy', 'name', name);
      throw error;
    }
  }

  /** Deletes a policy if `allowed` accepts the row as it is, with its `policy.delete` audit event. */
  async delete(id: string, allowed: (current: Policy) => void, actor: AuditActor): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<
        { id: string }[]
      >`SELECT id::text FROM policies WHERE id = ${id}::uuid FOR UPDATE`;
      if (!locked) throw new ResourceNotFoundError('policy', id);
      const current = await tx.policy.findUniqueOrThrow({ where: { id } });
      allowed(current);
      await tx.policy.delete({ where: { id } });
      await recordPolicyChange(tx, actor, AUDIT_ACTION.policyDelete, { before: current });
    });
  }

  /** Up to `take` hosts the policy selects whose unit is out of line, by host name, after `afterHost`. */
  outOfLine(policy: Policy, afterHost: string | undefined, take: number): Promise<HostUnitRow[]> {
    const after = afterHost === undefined ? Prisma.sql`TRUE` : Prisma.sql`h.name > ${afterHost}`;
    return this.prisma.$queryRaw<HostUnitRow[]>`
      SELECT ${HOST_UNIT_COLUMNS}
      ${unitOnHostsSql(policy)} AND ${outOfLineSql(policy)} AND ${after}
      ORDER BY h.name
      LIMIT ${take}`;
  }

  /** How many hosts the policy selects whose unit is out of line. */
  async countOutOfLine(policy: Policy): Promise<number> {
    const [row] = await this.prisma.$queryRaw<{ n: number }[]>`
      SELECT count(*)::int AS n ${unitOnHostsSql(policy)} AND ${outOfLineSql(policy)}`;
    return row?.n ?? 0;
  }

  /**
   * Evaluates one policy: makes its policy_hosts rows exactly the hosts out of line now, each with
   * the reasons `reasonsOf` gives (rows going in and out are webhook events, by trigger). Holds the
   * policy's row lock, so two workers never evaluate it at once; one that finds it locked (or gone)
   * leaves it to the other and returns null. Bounded: at most MAX_EVALUATED_HOSTS hosts per policy.
   */
  async evaluate(
    policyId: string,
    reasonsOf: (policy: Policy, row: HostUnitRow) => string[],
  ): Promise<{ outOfLine: number; cameIn: number; wentOut: number } | null> {
    return this.prisma.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<
        { id: string }[]
      >`SELECT id::text FROM policies WHERE id = ${policyId}::uuid FOR UPDATE SKIP LOCKED`;
      if (!locked) return null;
      const policy = await tx.policy.findUniqueOrThrow({ where: { id: policyId } });
      const rows = await tx.$queryRaw<HostUnitRow[]>`
        SELECT ${HOST_UNIT_COLUMNS}
        ${unitOnHostsSql(policy)} AND ${outOfLineSql(policy)}
        ORDER BY h.name
        LIMIT ${MAX_EVALUATED_HOSTS}`;
      const hostIds = rows.map((row) => row.hostId);
      // Reasons never hold a newline: one text per host, split again in SQL.
      const reasons = rows.map((row) => reasonsOf(policy, row).join('\n'));
      const cameIn = await tx.$executeRaw`
        DELETE FROM policy_hosts WHERE policy_id = ${policyId}::uuid AND host_id <> ALL(${hostIds}::uuid[])`;
      await tx.$executeRaw`
        UPDATE policy_hosts p SET reasons = string_to_array(n.reasons, E'\n')
        FROM unnest(${hostIds}::uuid[], ${reasons}::text[]) AS n(host_id, reasons)
        WHERE p.policy_id = ${policyId}::uuid AND p.host_id = n.host_id
          AND p.reasons IS DISTINCT FROM string_to_array(n.reasons, E'\n')`;
      const wentOut = await tx.$executeRaw`
        INSERT INTO policy_hosts (policy_id, host_id, reasons)
        SELECT ${policyId}::uuid, n.host_id, string_to_array(n.reasons, E'\n')
        FROM unnest(${hostIds}::uuid[], ${reasons}::text[]) AS n(host_id, reasons)
        ON CONFLICT (policy_id, host_id) DO NOTHING`;
      return { outOfLine: rows.length, cameIn, wentOut };
    });
  }
}
