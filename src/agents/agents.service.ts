import { Inject, Injectable } from '@nestjs/common';
import { AGENT_PROTOCOL_VERSION, type HostFacts } from '@drover/protocol';
import type { AuditActor } from '../audit/audit-actor';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { AgentsRepository } from './agents.repository';
import type { AgentView } from './dto/agent.dto';
import { CreatedJoinToken, EnrollmentService } from './enrollment.service';

/** What operators do with agents. */
@Injectable()
export class AgentsService {
  constructor(
    private readonly agents: AgentsRepository,
    private readonly enrollment: EnrollmentService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  createJoinToken(
    request: { hostName?: string | null; labels?: Record<string, string>; expiresInMinutes?: number },
    actor: AuditActor,
  ): Promise<CreatedJoinToken> {
    return this.enrollment.createJoinToken(request, actor);
  }

  async listJoinTokens(): Promise<{ items: Omit<CreatedJoinToken, 'joinToken'>[] }> {
    const tokens = await this.agents.listJoinTokens();
    return { items: tokens.map((token) => this.enrollment.joinTokenView(token)) };
  }

  revokeJoinToken(id: string, actor: AuditActor): Promise<void> {
    return this.agents.revokeJoinToken(id, actor);
  }

  async list(): Promise<{ items: AgentView[] }> {
    const now = Date.now();
    const agents = await this.agents.list();
    return {
      items: agents.map((agent) => ({
        id: agent.id,
        hostId: agent.hostId,
        hostName: agent.host.name,
        online:
          agent.revokedAt === null &&
          agent.lastSeenAt !== null &&
          now - agent.lastSeenAt.getTime() <= this.config.AGENT_OFFLINE_AFTER_MS,
        lastSeenAt: agent.lastSeenAt?.toISOString() ?? null,
        enrolledAt: agent.enrolledAt.toISOString(),
        revokedAt: agent.revokedAt?.toISOString() ?? null,
        protocolVersion: agent.protocolVersion,
        outdated: agent.protocolVersion < AGENT_PROTOCOL_VERSION,
        facts: agent.facts as HostFacts | null,
      })),
    };
  }

  revoke(id: string, actor: AuditActor): Promise<void> {
    return this.agents.revoke(id, actor);
  }
}
