import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { sessionSigningText } from '@drover/protocol';
import { AgentKey, readAgentState, writeAgentState } from './identity';

describe('the agent identity', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'drover-agent-identity-'));
  const stateDir = path.join(root, 'state');
  after(() => rm(root, { recursive: true, force: true }));

  it('generates its key once, root-only, and keeps it', async () => {
    const first = await AgentKey.loadOrCreate(stateDir);
    const second = await AgentKey.loadOrCreate(stateDir);
    assert.equal(second.publicKey, first.publicKey);
    assert.equal((await stat(path.join(stateDir, 'agent.key'))).mode & 0o777, 0o600);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.match(await readFile(path.join(stateDir, 'agent.key'), 'utf8'), /BEGIN PRIVATE KEY/);
  });

  it('signs the session text so that the exported SPKI key verifies it', async () => {
    const key = await AgentKey.loadOrCreate(stateDir);
    const agentId = '6c1f1b40-3a51-4a55-9b1e-2a3b8e0c9d11';
    const signature = key.signChallenge(agentId, 'challenge-1');
    const publicKey = createPublicKey({ key: Buffer.from(key.publicKey, 'base64'), format: 'der', type: 'spki' });
    assert.equal(publicKey.asymmetricKeyType, 'ed25519');
    const text = Buffer.from(sessionSigningText(agentId, 'challenge-1'));
    assert.ok(verify(null, text, publicKey, Buffer.from(signature, 'base64')));
    assert.ok(
      !verify(null, Buffer.from(sessionSigningText(agentId, 'other')), publicKey, Buffer.from(signature, 'base64')),
    );
  });

  it('writes and reads agent.json', async () => {
    assert.equal(await readAgentState(path.join(root, 'empty')), null);
    const state = {
      agentId: '6c1f1b40-3a51-4a55-9b1e-2a3b8e0c9d11',
      hostId: '0f6c43f5-8d3e-4c59-a0a4-7f6f2e1d9b22',
      hostName: 'web-1',
      server: 'https://drover.example.com',
    };
    await writeAgentState(stateDir, state);
    assert.deepEqual(await readAgentState(stateDir), state);
    assert.equal((await stat(path.join(stateDir, 'agent.json'))).mode & 0o777, 0o600);
  });
});
