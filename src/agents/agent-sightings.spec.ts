import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostFacts } from '@drover/protocol';
import type { AppConfig } from '../config/config.schema';
import { AgentSightings } from './agent-sightings';
import type { AgentIdentity, AgentsRepository, Sighting } from './agents.repository';

const config = { AGENT_OFFLINE_AFTER_MS: 60_000 } as AppConfig;

function identity(n: number): AgentIdentity {
  return { agentId: `agent-${n}`, hostId: `host-${n}`, hostName: `h${n}`, revokedAt: null, lastSeenAt: null };
}

function sightingsWith(write: (batch: Sighting[]) => Promise<void>): AgentSightings {
  return new AgentSightings({ recordSeen: write } as unknown as AgentsRepository, config);
}

const facts = { hostname: 'h1', uptimeSeconds: 7 } as HostFacts;

describe('AgentSightings', () => {
  it('writes the agents seen meanwhile in one batch, each once, keeping the facts a heartbeat sent', async () => {
    const batches: Sighting[][] = [];
    const sightings = sightingsWith((batch) => {
      batches.push(batch);
      return Promise.resolve();
    });
    const first = sightings.seen(identity(1), facts);
    const again = sightings.seen(identity(1), null);
    const other = sightings.seen(identity(2), null);
    await Promise.all([first, again, other]);
    assert.deepEqual(batches, [
      [
        { agentId: 'agent-1', hostId: 'host-1', facts },
        { agentId: 'agent-2', hostId: 'host-2', facts: null },
      ],
    ]);
  });

  it('fails the callers of a batch whose write failed, and starts a new batch after it', async () => {
    let fail = true;
    const sightings = sightingsWith(() => (fail ? Promise.reject(new Error('no connection')) : Promise.resolve()));
    await assert.rejects(sightings.seen(identity(1), facts), /no connection/);
    fail = false;
    await sightings.seen(identity(1), facts);
  });

  it('writes what is pending when the module stops', async () => {
    const batches: Sighting[][] = [];
    const sightings = sightingsWith((batch) => {
      batches.push(batch);
      return Promise.resolve();
    });
    const seen = sightings.seen(identity(3), null);
    await sightings.onModuleDestroy();
    await seen;
    assert.equal(batches.length, 1);
  });

  it('is due for a request other than a heartbeat only when last-seen is older than half the offline threshold', () => {
    const sightings = sightingsWith(() => Promise.resolve());
    const now = Date.parse('2026-12-02T08:00:00Z');
    assert.equal(sightings.due(null, now), true);
    assert.equal(sightings.due(new Date(now - 30_000), now), false);
    assert.equal(sightings.due(new Date(now - 30_001), now), true);
  });
});
