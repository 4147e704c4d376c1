import { Injectable, Logger } from '@nestjs/common';
import { AUDIT_ACTION, type HostFacts } from '@drover/protocol';
import { AuditActor, auditActorColumns } from '../audit/audit-actor';
import { statementBatcher } from '../common/concurrency/batcher';
import { ResourceNotFoundError, StateConflictError, UnauthenticatedError } from '../common/errors/domain-errors';
import { Agent, JoinToken, Prisma } from '../generated/prisma/client';
import { PrismaService } from '../infra/prisma/prisma.service';
import { storableText } from '../operations/task-output';

export type { Agent, JoinToken };

/** The most identity reads one statement takes (see AgentsRepository.identity). */
const MAX_IDENTITY_BATCH = 100;
/** The most claims one statement makes (see AgentsRepository.claimNext). */
const MAX_CLAIM_BATCH = 100;

/** An agent as its credential's guard sees it on every request. */
export interface AgentIdentity {
  agentId: string;
  hostId: string;
  hostName: string;
  revokedAt: Date | null;
  lastSeenAt: Date | null;
}

export interface AgentWithHost extends Agent {
  host: { name: string; labels: Prisma.JsonValue };
}

export interface NewJoinToken {
  secretHash: string;
  hostName: string | null;
  labels: Record<string, string>;
  expiresAt: Date;
}

export interface Enrolment {
  secretHash: string;
  publicKey: string;
  facts: HostFacts;
  sourceAddress: string | null;
  requestId: string | null;
}

/** That an agent was heard of, with the facts its heartbeat carried (null: any other request). */
export interface Sighting {
  agentId: string;
  hostId: string;
  facts: HostFacts | null;
}

/** A task an agent claimed: what it carries out, and what an earlier attempt left. */
export interface ClaimedTask {
  id: string;
  attempt: number;
  verb: string;
  unit: string | null;
  commandTimeoutMs: number;
  daemonReload: string;
  before: Prisma.JsonValue | null;
  commandSentMsAgo: number | null;
}

/** A claim's answer: the task claimed (null when none was claimable), and when the first running one's claim lapses. */
export interface Claim {
  task: ClaimedTask | null;
  /** In how many milliseconds the first running task's claim lapses, null when none runs. */
  nextLapseInMs: number | null;
}

interface ClaimRequest {
  hostId: string;
  leaseMs: number;
}

/** The agent-facing and operator-facing persistence of agents: join tokens, agents, claims. */
@Injectable()
export class AgentsRepository {
  private readonly logger = new Logger(AgentsRepository.name);
  /**
   * The identity reads of the agent requests that arrived in the same turn of the event loop, as
   * one statement (see Batcher): each request still reads after it arrived, so a revocation
   * committed before it is seen, as with a read of its own.
   */
  private readonly identities = statementBatcher<string, AgentIdentity | null>(this.logger, 'agent identity reads', {
    runMany: (agentIds) => this.identitiesOf(agentIds),
    keyOf: (agentId) => agentId,
    maxSize: MAX_IDENTITY_BATCH,
  });

  /**
   * The claims of the polls that looked for work in the same turn of the event loop (a rollout's
   * batch offers its tasks together, so their agents' polls wake together), as one statement: one
   * claim per host (a second poll of a host in the same turn makes the next statement, which waits
   * for the host's lock and sees the claim of whichever statement took it first).
   */
  private readonly claims = statementBatcher<ClaimRequest, Claim>(this.logger, 'agent task claims', {
    runMany: (requests) => this.claimsOf(requests),
    keyOf: (request) => request.hostId,
    maxSize: MAX_CLAIM_BATCH,
  });

  constructor(private readonly prisma: PrismaService) {}

  async createJoinToken(token: NewJoinToken, actor: AuditActor): Promise<JoinToken> {
    return this.prisma.$transaction(async (tx) => {
      const created = await tx.joinToken.create({
        data: { ...token, createdBy: actor.actorName },
      });
      await tx.auditEvent.create({
        data: {
          ...auditActorColumns(actor),
          action: AUDIT_ACTION.agentJoinTokenCreate,
          result: 'succeeded',
          hostName: token.hostName,
          parameters: {
            joinTokenId: created.id,
            hostName: token.hostName,
            labels: token.labels,
            expiresAt: token.expiresAt.toISOString(),
          },
        },
      });
      return created;
    });
  }

  listJoinTokens(): Promise<JoinToken[]> {
    return this.prisma.joinToken.findMany({
      where: { usedAt: null, revokedAt: null, expiresAt: { gt: new Date() } },
      orderBy: { createdAt: 'desc' },
      take: 1_000,
    });
  }

  async revokeJoinToken(id: string, actor: AuditActor): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const revoked = await tx.joinToken.updateMany({
        where: { id, usedAt: null, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      if (revoked.count === 0) {
        if (!(await tx.joinToken.findUnique({ where: { id } }))) throw new ResourceNotFoundError('join token', id);
        throw new StateConflictError('join_token_ended', `join token ${id} was already used or revoked`);
      }
      await tx.auditEvent.create({
        data: {
          ...auditActorColumns(actor),
          action: AUDIT_ACTION.agentJoinTokenRevoke,
          result: 'succeeded',
          parameters: { joinTokenId: id },
        },
      });
    });
  }

  /**
   * Spends a join token and registers the agent of its host, atomically: the token's row is locked,
   * so of two agents presenting one token exactly one enrols. A host already in the inventory is
   * bound to the agent only when the token names it (an unbound token cannot take over a host by
   * claiming its hostname); binding replaces that host's earlier agent and its credentials.
   */
  async enrol(enrolment: Enrolment, hostName: (token: JoinToken) => string): Promise<AgentWithHost> {
    return this.prisma.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<{ id: string }[]>`
        SELECT id::text FROM agent_join_tokens WHERE secret_hash = ${enrolment.secretHash} FOR UPDATE`;
      const token = locked ? await tx.joinToken.findUnique({ where: { id: locked.id } }) : null;
      if (!token) throw new UnauthenticatedError('unknown join token: ask an operator for a new one');
      if (token.usedAt) throw new UnauthenticatedError('this join token was already used: ask for a new one');
      if (token.revokedAt) throw new UnauthenticatedError('this join token was revoked');
      if (token.expiresAt.getTime() <= Date.now()) throw new UnauthenticatedError('this join token expired');
      const name = hostName(token);
      const labels = token.labels as Record<string, string>;
      const existing = await tx.host.findUnique({ where: { name }, include: { agent: true } });
      if (existing && token.hostName === null) {
        throw new StateConflictError(
          'host_exists',
          `host ${name} is already in the inventory: enrol it with a join token bound to that host name`,
        );
      }
      const host = existing
        ? await tx.host.update({
            where: { id: existing.id },
            data: {
              transport: 'agent',
              labels: { ...(existing.labels as Record<string, string>), ...labels },
            },
          })
        : await tx.host.create({
            data: {
              name,
              address: name,
              port: 0,
              transport: 'agent',
              labels,
              status: 'reachable',
              lastSeenAt: new Date(),
            },
          });
      if (existing?.agent) await tx.agent.delete({ where: { id: existing.agent.id } });
      const agent = await tx.agent.create({
        data: {
          hostId: host.id,
          publicKey: enrolment.publicKey,
          facts: enrolment.facts,
          protocolVersion: enrolment.facts.protocolVersion,
          lastSeenAt: new Date(),
        },
      });
      await tx.joinToken.update({ where: { id: token.id }, data: { usedAt: new Date(), usedByAgentId: agent.id } });
      await tx.auditEvent.create({
        data: {
          actorTokenId: null,
          actorName: storableText(`agent of ${name} (join token of ${token.createdBy})`).slice(0, 100),
          requestId: enrolment.requestId,
          sourceAddress: enrolment.sourceAddress,
          action: AUDIT_ACTION.agentEnroll,
          result: 'succeeded',
          hostId: host.id,
          hostName: name,
          parameters: {
            agentId: agent.id,
            joinTokenId: token.id,
            replacedAgentId: existing?.agent?.id ?? null,
            newHost: existing === null,
          },
          after: { publicKey: enrolment.publicKey, facts: enrolment.facts },
        },
      });
      return { ...agent, host: { name: host.name, labels: host.labels } };
    });
  }

  /**
   * The agent and its host's name, read on every agent request: one statement by primary key for
   * the requests of one turn (a findUnique selecting the host is two round trips, one per table).
   */
  identity(agentId: string): Promise<AgentIdentity | null> {
    return this.identities.run(agentId);
  }

  private async identitiesOf(agentIds: readonly string[]): Promise<(AgentIdentity | null)[]> {
    const agents = await this.prisma.rows<AgentIdentity>(Prisma.sql`
      SELECT a.id::text AS "agentId", a.host_id::text AS "hostId", h.name AS "hostName",
        a.revoked_at AS "revokedAt", a.last_seen_at AS "lastSeenAt"
      FROM agents a JOIN hosts h ON h.id = a.host_id
      WHERE a.id = ANY(${[...agentIds]}::uuid[])`);
    const byId = new Map(agents.map((agent) => [agent.agentId, agent]));
    return agentIds.map((agentId) => byId.get(agentId) ?? null);
  }

  findById(agentId: string): Promise<Agent | null> {
    return this.prisma.agent.findUnique({ where: { id: agentId } });
  }

  list(): Promise<AgentWithHost[]> {
    return this.prisma.agent.findMany({
      include: { host: { select: { name: true, labels: true } } },
      orderBy: { host: { name: 'asc' } },
      take: 10_000,
    });
  }

  /**
   * Agents were heard of: they and their hosts are seen now, with the facts of those that sent them.
   * One statement per table for the whole batch (AgentSightings gathers them).
   */
  async recordSeen(sightings: Sighting[]): Promise<void> {
    if (sightings.length === 0) return;
    const agentIds = sightings.map((sighting) => sighting.agentId);
    const facts = sightings.map((sighting) => (sighting.facts ? JSON.stringify(sighting.facts) : null));
    await this.prisma.$transaction([
      this.prisma.$executeRaw`
        UPDATE agents SET last_seen_at = now(), facts = COALESCE(seen.facts, agents.facts),
          protocol_version = COALESCE((seen.facts ->> 'protocolVersion')::int, agents.protocol_version)
        FROM unnest(${agentIds}::uuid[], ${facts}::jsonb[]) AS seen(id, facts)
        WHERE agents.id = seen.id`,
      this.prisma.$executeRaw`
        UPDATE hosts SET status = 'reachable', last_seen_at = now(), updated_at = now()
        WHERE id = ANY(${sightings.map((sighting) => sighting.hostId)}::uuid[])`,
    ]);
  }

  /** Replaces the key of an agent that is not revoked, with its audit event (old and new key). */
  async rotateKey(
    agent: AgentIdentity,
    publicKey: string,
    sourceAddress: string | null,
    requestId: string | null,
  ): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const [current] = await tx.$queryRaw<{ public_key: string }[]>`
        SELECT public_key FROM agents WHERE id = ${agent.agentId}::uuid AND revoked_at IS NULL FOR UPDATE`;
      if (!current) throw new StateConflictError('agent_revoked', `the agent of ${agent.hostName} was revoked`);
      await tx.agent.update({ where: { id: agent.agentId }, data: { publicKey } });
      await tx.auditEvent.create({
        data: {
          actorTokenId: null,
          actorName: `agent of ${agent.hostName}`.slice(0, 100),
          requestId,
          sourceAddress,
          action: AUDIT_ACTION.agentRotateKey,
          result: 'succeeded',
          hostId: agent.hostId,
          hostName: agent.hostName,
          parameters: { agentId: agent.agentId },
          before: { publicKey: current.public_key },
          after: { publicKey },
        },
      });
    });
  }

  async revoke(agentId: string, actor: AuditActor): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const agent = await tx.agent.findUnique({ where: { id: agentId }, include: { host: true } });
      if (!agent) throw new ResourceNotFoundError('agent', agentId);
      if (agent.revokedAt) throw new StateConflictError('agent_revoked', `agent ${agentId} was already revoked`);
      await tx.agent.update({ where: { id: agentId }, data: { revokedAt: new Date() } });
      await tx.auditEvent.create({
        data: {
          ...auditActorColumns(actor),
          action: AUDIT_ACTION.agentRevoke,
          result: 'succeeded',
          hostId: agent.hostId,
          hostName: agent.host.name,
          parameters: { agentId },
        },
      });
    });
  }

  /**
   * Claims the host's next offered task for its agent, as a new attempt (the fencing token): a
   * queued one, or a running one whose agent's lease lapsed (the agent lost it, or is back after a
   * partition). Claims of one host are serialised, and never two tasks on one unit run at once.
   * Also says in how many milliseconds the first running task's claim lapses (then its task can be
   * claimed again), or null when none runs. One call to the database function claim_agent_tasks,
   * with the other claims made in the same turn (see `claims`).
   */
  claimNext(hostId: string, leaseMs: number): Promise<Claim> {
    return this.claims.run({ hostId, leaseMs });
  }

  private async claimsOf(requests: readonly ClaimRequest[]): Promise<Claim[]> {
    const rows = await this.prisma.rows<{
      ordinal: number;
      task_id: string | null;
      attempt: number;
      verb: string;
      unit: string | null;
      before: Prisma.JsonValue | null;
      command_sent_ms_ago: number | null;
      command_timeout_ms: number;
      daemon_reload: string;
      next_lapse_ms: number | null;
    }>(Prisma.sql`
      SELECT * FROM claim_agent_tasks(
        ${requests.map((request) => request.hostId)}::text[], ${requests.map((request) => request.leaseMs)}::int[])`);
    const byOrdinal = new Map(rows.map((row) => [row.ordinal, row]));
    return requests.map((_, index) => {
      const row = byOrdinal.get(index + 1);
      const lapse = row?.next_lapse_ms ?? null;
      const nextLapseInMs = lapse === null ? null : Math.max(0, Math.ceil(lapse));
      if (!row || row.task_id === null) return { task: null, nextLapseInMs };
      return {
        task: {
          id: row.task_id,
          attempt: row.attempt,
          verb: row.verb,
          unit: row.unit,
          commandTimeoutMs: row.command_timeout_ms,
          daemonReload: row.daemon_reload,
          before: row.before,
          commandSentMsAgo: row.command_sent_ms_ago === null ? null : Math.round(row.command_sent_ms_ago),
        },
        nextLapseInMs,
      };
    });
  }

  /** Renews the agent's claim of an attempt; false when it is no longer that attempt's (or its host's). */
  async renewLease(hostId: string, taskId: string, attempt: number, leaseMs: number): Promise<boolean> {
    const renewed = await this.prisma.execute(Prisma.sql`
      UPDATE tasks SET lease_expires_at = now() + ${leaseMs} * interval '1 millisecond'
      WHERE id = ${taskId}::uuid AND host_id = ${hostId}::uuid AND state = 'running' AND attempts = ${attempt}
        AND offered_at IS NOT NULL`);
    return renewed === 1;
  }

  /** Whether the task is this host's (an agent never learns anything of another host's tasks). */
  async ownsTask(hostId: string, taskId: string): Promise<boolean> {
    const task = await this.prisma.task.findFirst({ where: { id: taskId, hostId }, select: { id: true } });
    return task !== null;
  }

  /** Stores one output chunk of an attempt once: chunk `seq` only when it is the next one expected. */
  async appendOutputChunk(taskId: string, attempt: number, seq: number, text: string): Promise<void> {
    await this.prisma.execute(Prisma.sql`
      UPDATE tasks SET output = COALESCE(output, '') || ${storableText(text)}, output_seq = output_seq + 1
      WHERE id = ${taskId}::uuid AND state = 'running' AND attempts = ${attempt} AND output_seq = ${seq}`);
  }
}
