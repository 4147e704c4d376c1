import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { HostFacts } from '@drover/protocol';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { AgentsRepository, type AgentIdentity, type Sighting } from './agents.repository';

/**
 * How long sightings gather before they are written together. An API process killed meanwhile
 * loses at most this much of them: an agent seen in that second looks a second older than it is,
 * far inside AGENT_OFFLINE_AFTER_MS, and its next heartbeat writes it again. Nothing else depends
 * on last-seen (claims, leases and revocation are read from their own columns).
 */
const SIGHTING_BATCH_MS = 1_000;

/**
 * Records that agents were heard of (last-seen of the agent and its host, and the facts a heartbeat
 * carries), batched: one write per API process per SIGHTING_BATCH_MS for all the agents seen in it,
 * so thousands of idle agents do not each take a database connection on every request. A request
 * other than a heartbeat records its agent only when last-seen is older than half of
 * AGENT_OFFLINE_AFTER_MS (AgentAuthGuard): agents that heartbeat are never recorded by their polls.
 */
@Injectable()
export class AgentSightings implements OnModuleDestroy {
  private readonly logger = new Logger(AgentSightings.name);
  private pending = new Map<string, Sighting>();
  private batch: { written: Promise<void>; resolve: () => void; reject: (error: Error) => void } | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly agents: AgentsRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Whether a request of an agent last seen at `lastSeenAt` should record it (heartbeats always do). */
  due(lastSeenAt: Date | null, now = Date.now()): boolean {
    return lastSeenAt === null || now - lastSeenAt.getTime() > this.config.AGENT_OFFLINE_AFTER_MS / 2;
  }

  /**
   * Notes that the agent was heard of (with its facts when it sent them). Resolves once the batch it
   * joined is written; a caller that need not wait may leave it (a failed write is logged here).
   */
  seen(agent: AgentIdentity, facts: HostFacts | null): Promise<void> {
    const earlier = this.pending.get(agent.agentId);
    this.pending.set(agent.agentId, {
      agentId: agent.agentId,
      hostId: agent.hostId,
      facts: facts ?? earlier?.facts ?? null,
    });
    if (!this.batch) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const written = new Promise<void>((onWritten, onFailed) => {
        resolve = onWritten;
        reject = onFailed;
      });
      // Logged in write(); callers that do not wait must not turn it into an unhandled rejection.
      written.catch(() => undefined);
      this.batch = { written, resolve, reject };
      this.timer = setTimeout(() => void this.write(), SIGHTING_BATCH_MS);
    }
    return this.batch.written;
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.write();
  }

  private async write(): Promise<void> {
    const { pending, batch } = this;
    this.pending = new Map();
    this.batch = null;
    this.timer = null;
    if (!batch) return;
    try {
      await this.agents.recordSeen([...pending.values()]);
      batch.resolve();
    } catch (error) {
      this.logger.error({ err: error, agents: pending.size }, 'could not record that agents were seen');
      batch.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}
