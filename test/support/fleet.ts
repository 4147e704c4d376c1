import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'ssh2';
import type { Schemas } from '../../src/client';
import { sha256Fingerprint } from '../../src/infra/ssh/host-key';
import { testEnv } from './env';

export interface FleetInventory {
  hosts: (Schemas['CreateHost'] & {
    hostKeyFingerprint: string;
    port: number;
    sshUser: string;
    labels: Record<string, string>;
  })[];
}

export function fleetInventoryPath(): string {
  return path.join(testEnv.fleetState, 'inventory.json');
}

export async function readFleetInventory(): Promise<FleetInventory> {
  return JSON.parse(await readFile(fleetInventoryPath(), 'utf8')) as FleetInventory;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  /** The fingerprint the server presented (whether or not it was accepted). */
  presentedFingerprint: string;
}

/**
 * Runs one command on a fleet host over ssh2, accepting only the pinned host key. Rejects (and
 * runs nothing) when the server presents another key.
 */
export async function sshExec(
  host: { address: string; port?: number; sshUser?: string },
  pinnedFingerprint: string,
  command: string,
): Promise<ExecResult> {
  const privateKey = await readFile(path.join(testEnv.fleetState, 'ssh', 'id_ed25519'));
  return new Promise((resolve, reject) => {
    const client = new Client();
    let presentedFingerprint = '';
    client
      .on('ready', () => {
        client.exec(command, (error, stream) => {
          if (error) {
            client.end();
            reject(error);
            return;
          }
          let stdout = '';
          let stderr = '';
          stream.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
          stream.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          stream.on('close', (code: number | null) => {
            client.end();
            resolve({ stdout, stderr, code, presentedFingerprint });
          });
        });
      })
      .on('error', (error) => reject(Object.assign(error, { presentedFingerprint })))
      .connect({
        host: host.address,
        port: host.port ?? 22,
        username: host.sshUser ?? 'root',
        privateKey,
        readyTimeout: 15_000,
        hostVerifier: (key: Buffer) => {
          presentedFingerprint = sha256Fingerprint(key);
          return presentedFingerprint === pinnedFingerprint;
        },
      });
  });
}
