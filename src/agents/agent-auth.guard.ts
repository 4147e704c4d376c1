import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { AGENT_PROTOCOL_HEADER } from '@drover/protocol';
import { ForbiddenError, UnauthenticatedError } from '../common/errors/domain-errors';
import { AgentCredentials } from './agent-credentials';
import { AgentSightings } from './agent-sightings';
import { AgentsRepository, type AgentIdentity } from './agents.repository';
import { checkProtocol } from './enrollment.service';

/** A request an agent made, once its credential was accepted. */
export interface AgentRequest extends Request {
  agent: AgentIdentity;
}

/**
 * The only way into the agent routes: a valid agent credential of an agent that is not revoked.
 * A revoked agent is refused at once: its row is read on every request (by primary key, the
 * requests of one turn in one statement: AgentsRepository.identity), so that revocation stops an agent at its next request on every
 * API replica. No cache: an in-process one invalidated by a Redis or PostgreSQL notification would
 * let a replica that has not received it yet (a slow or reconnecting subscriber) accept a revoked
 * agent for a while, and one in Redis next to the credential would have to be written apart from
 * the transaction that revokes; measured under 10,000 idle agents (bench/results/agent.md), this
 * read is one of the two statements of a poll.
 * API tokens are never accepted here, nor agent credentials anywhere else.
 */
@Injectable()
export class AgentAuthGuard implements CanActivate {
  constructor(
    private readonly credentials: AgentCredentials,
    private readonly agents: AgentsRepository,
    private readonly sightings: AgentSightings,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AgentRequest>();
    const protocol = request.headers[AGENT_PROTOCOL_HEADER];
    checkProtocol(Number(typeof protocol === 'string' ? protocol : NaN), `header ${AGENT_PROTOCOL_HEADER}`);
    const header = request.headers.authorization;
    const presented = (header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null)?.[1] ?? null;
    if (presented === null)
      throw new UnauthenticatedError('send the agent credential as "Authorization: Bearer <credential>"');
    const agentId = await this.credentials.resolve(presented);
    const agent = agentId === null ? null : await this.agents.identity(agentId);
    if (!agent) throw new UnauthenticatedError('unknown or expired agent credential: sign a new challenge');
    if (agent.revokedAt)
      throw new ForbiddenError(`the agent of ${agent.hostName} was revoked: it must not work any more`);
    // Every request counts as a heartbeat, but is recorded only when last-seen grows old (agents
    // that heartbeat never are) and without waiting for the batched write: polls cost no writes.
    if (this.sightings.due(agent.lastSeenAt)) void this.sightings.seen(agent, null);
    request.agent = agent;
    return true;
  }
}
