import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { AGENT_PROTOCOL_HEADER } from '@drover/protocol';
import { ForbiddenError, UnauthenticatedError } from '../common/errors/domain-errors';
import { AgentCredentials } from './agent-credentials';
import { AgentsRepository, type AgentIdentity } from './agents.repository';
import { checkProtocol } from './enrollment.service';

/** A request an agent made, once its credential was accepted. */
export interface AgentRequest extends Request {
  agent: AgentIdentity;
}

/**
 * Every request is a heartbeat, but the agent row is written at most this often per agent (its
 * heartbeats, every 15 s, write it anyway): a fleet of idle agents polling costs no writes.
 */
const SEEN_WRITE_INTERVAL_MS = 15_000;

/**
 * The only way into the agent routes: a valid agent credential of an agent that is not revoked.
 * A revoked agent is refused at once (its credential is checked against the database on every
 * request). API tokens are never accepted here, nor agent credentials anywhere else.
 */
@Injectable()
export class AgentAuthGuard implements CanActivate {
  constructor(
    private readonly credentials: AgentCredentials,
    private readonly agents: AgentsRepository,
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
    if (agent.lastSeenAt === null || Date.now() - agent.lastSeenAt.getTime() > SEEN_WRITE_INTERVAL_MS) {
      await this.agents.recordSeen(agent, null);
    }
    request.agent = agent;
    return true;
  }
}
