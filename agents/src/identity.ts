import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { keyRotationSigningText, sessionSigningText } from '@drover/protocol';
import { z } from 'zod';
import { ensurePrivateDir, syncDir, writeFileAtomically } from './files';

const KEY_FILE = 'agent.key';
/** A key being rotated to: written before the server is told, renamed over KEY_FILE once it knows it. */
const NEXT_KEY_FILE = 'agent.key.next';
const STATE_FILE = 'agent.json';

/** What enrolment left: who the server knows this agent as. */
export const agentStateSchema = z.strictObject({
  agentId: z.uuid(),
  hostId: z.uuid(),
  hostName: z.string(),
  server: z.string(),
});
export type AgentState = z.output<typeof agentStateSchema>;

/** The agent's Ed25519 key pair: the private key never leaves stateDir (0600, root only). */
export class AgentKey {
  private constructor(private readonly privateKey: KeyObject) {}

  /**
   * The key in `stateDir`, generated and written (0600, in a 0700 directory) the first time. An
   * existing key is never replaced: the server knows this agent by it.
   */
  static async loadOrCreate(stateDir: string): Promise<AgentKey> {
    await ensurePrivateDir(stateDir);
    const file = path.join(stateDir, KEY_FILE);
    try {
      return new AgentKey(createPrivateKey(await readFile(file, 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
    // 'wx': two agents started at once cannot both write a key; the loser reads the winner's.
    try {
      const handle = await open(file, 'wx', 0o600);
      try {
        await handle.writeFile(pem);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return new AgentKey(createPrivateKey(await readFile(file, 'utf8')));
    }
    await syncDir(stateDir);
    return new AgentKey(privateKey);
  }

  /**
   * The key this agent rotates to: the one staged by an earlier rotation that did not finish, or a
   * new one, written (0600) before the server hears of it so that it can never be lost.
   */
  static async stageNext(stateDir: string): Promise<AgentKey> {
    const staged = await AgentKey.loadStaged(stateDir);
    if (staged) return staged;
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeFileAtomically(
      path.join(stateDir, NEXT_KEY_FILE),
      privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    );
    return new AgentKey(privateKey);
  }

  /** The staged key of a rotation that did not finish, or null. */
  static async loadStaged(stateDir: string): Promise<AgentKey | null> {
    try {
      return new AgentKey(createPrivateKey(await readFile(path.join(stateDir, NEXT_KEY_FILE), 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** The server knows the staged key now: it becomes this agent's key. */
  static async promoteStaged(stateDir: string): Promise<void> {
    await rename(path.join(stateDir, NEXT_KEY_FILE), path.join(stateDir, KEY_FILE));
    await syncDir(stateDir);
  }

  /** The public key as the server stores it: SPKI DER, base64. */
  get publicKey(): string {
    return createPublicKey(this.privateKey).export({ type: 'spki', format: 'der' }).toString('base64');
  }

  /** The proof that this (new) key is held: its signature (base64) of keyRotationSigningText(agentId, publicKey). */
  signRotation(agentId: string): string {
    return sign(null, Buffer.from(keyRotationSigningText(agentId, this.publicKey), 'utf8'), this.privateKey).toString(
      'base64',
    );
  }

  /** The proof for a session: the signature (base64) of sessionSigningText(agentId, challenge). */
  signChallenge(agentId: string, challenge: string): string {
    return sign(null, Buffer.from(sessionSigningText(agentId, challenge), 'utf8'), this.privateKey).toString('base64');
  }
}

/** agent.json, or null before enrolment. */
export async function readAgentState(stateDir: string): Promise<AgentState | null> {
  const file = path.join(stateDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const parsed = agentStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(`${file} is damaged (${parsed.error.issues[0]?.message}); remove it to enrol again`);
  return parsed.data;
}

export async function writeAgentState(stateDir: string, state: AgentState): Promise<void> {
  await ensurePrivateDir(stateDir);
  await writeFileAtomically(path.join(stateDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}
