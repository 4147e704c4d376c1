import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { RedisClient } from '../infra/redis/redis-connection';
import { readCommandSchema, type ReadCommand, type ReadItem, type ReadResult } from '@drover/protocol';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { REDIS } from '../infra/redis/redis.module';
import { AgentWake } from '../infra/redis/agent-wake';

const ANSWER_POLL_MS = 100;

export class AgentReadTimeout extends Error {}

/**
 * Reads the server asks an agent for (a health gate's units and probes): a request queued in Redis
 * for the host's agent, answered through Redis. They change nothing on the host, so a lost one is
 * simply not answered and the gate counts that as a failed check, as it would a host that timed out.
 */
@Injectable()
export class AgentReads {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly wake: AgentWake,
  ) {}

  /** Asks the host's agent to read `items`; resolves with its answers, or throws AgentReadTimeout. */
  async read(hostId: string, hostName: string, items: ReadItem[], timeoutMs: number): Promise<ReadResult[]> {
    const command: ReadCommand = { kind: 'read', requestId: randomUUID(), items, timeoutMs };
    const keep = timeoutMs * 2;
    await this.redis
      .multi()
      .set(this.key('owner', command.requestId), hostId, 'PX', keep)
      .rpush(this.key('queue', hostId), JSON.stringify(command))
      .pexpire(this.key('queue', hostId), keep)
      .exec();
    await this.wake.wake(hostId);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const answer = await this.redis.getdel(this.key('answer', command.requestId));
      if (answer !== null) return JSON.parse(answer) as ReadResult[];
      await sleep(ANSWER_POLL_MS);
    }
    throw new AgentReadTimeout(`the agent of ${hostName} did not answer within ${timeoutMs} ms`);
  }

  /** The host's next read request, for its agent. */
  async next(hostId: string): Promise<ReadCommand | null> {
    const raw = await this.redis.lpop(this.key('queue', hostId));
    return raw === null ? null : readCommandSchema.parse(JSON.parse(raw));
  }

  /** Stores an agent's answer; false when the request is not its host's (or long gone). */
  async answer(hostId: string, requestId: string, results: ReadResult[]): Promise<boolean> {
    if ((await this.redis.get(this.key('owner', requestId))) !== hostId) return false;
    await this.redis.set(this.key('answer', requestId), JSON.stringify(results), 'PX', 60_000);
    return true;
  }

  private key(kind: 'owner' | 'queue' | 'answer', id: string): string {
    return `${this.config.QUEUE_PREFIX}:agent-read-${kind}:${id}`;
  }
}
