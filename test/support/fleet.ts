import { execFile } from 'node:child_process';
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

/**
 * Where the fleet the suite booted lives on this machine (test/fleet/fleet.sh writes it at `up`):
 * several fleets can be up at once, each with its own bridge, subnet, cgroups and machine names.
 */
export interface FleetInstance {
  name: string;
  bridge: string;
  /** The fleet's /16, e.g. 10.201.0.0/16; `gateway` is this machine's address on the bridge. */
  subnet: string;
  gateway: string;
  /** Hosts' cgroups are `<root>/<cgroupParent>/<host name>` in each of `cgroupRoots`. */
  cgroupParent: string;
  cgroupRoots: string[];
  hosts: { name: string; machine: string; veth: string; address: string }[];
}

let instance: Promise<FleetInstance> | undefined;

export function readFleetInstance(): Promise<FleetInstance> {
  instance ??= readFile(path.join(testEnv.fleetState, 'instance.json'), 'utf8').then(
    (text) => JSON.parse(text) as FleetInstance,
  );
  return instance;
}

/** A host's own directory in one cgroup hierarchy (e.g. 'freezer'), where its processes are. */
export async function hostCgroup(host: { name: string }, hierarchy: string): Promise<string> {
  const fleet = await readFleetInstance();
  const root = fleet.cgroupRoots.find((candidate) => path.basename(candidate) === hierarchy);
  if (!root)
    throw new Error(`fleet ${fleet.name} has no ${hierarchy} cgroup hierarchy (${fleet.cgroupRoots.join(', ')})`);
  return path.join(root, fleet.cgroupParent, host.name);
}

/** The process id (on this machine) of a running host's init. */
async function hostInit(host: { name: string }): Promise<string> {
  const procs = await readFile(
    path.join(await hostCgroup(host, 'systemd'), 'payload', 'init.scope', 'cgroup.procs'),
    'utf8',
  );
  const init = procs.split('\n')[0]?.trim();
  if (!init) throw new Error(`${host.name} is not running (no init process in its cgroup)`);
  return init;
}

/**
 * Where a path inside a running host is on this machine (through its init's root), for copying
 * files in and out without a shell in between.
 */
export async function pathInHost(host: { name: string }, file: string): Promise<string> {
  return path.join('/proc', await hostInit(host), 'root', file);
}

/**
 * Runs a shell command as root inside a host's namespaces (nsenter into its init), without SSH: for
 * hosts whose sshd is stopped, such as agent hosts. Resolves with what it printed and its status.
 */
export async function inHost(
  host: { name: string },
  command: string,
  timeoutMs = 60_000,
): Promise<Omit<ExecResult, 'presentedFingerprint'>> {
  const init = await hostInit(host);
  return new Promise((resolve, reject) => {
    execFile(
      'nsenter',
      ['-t', init, '-m', '-u', '-i', '-n', '-p', '--', '/bin/sh', '-c', command],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`nsenter into ${host.name}: ${error.message}`));
          return;
        }
        resolve({ stdout, stderr, code: error ? (error.code as number) : 0 });
      },
    );
  });
}

/** This machine's end of a host's link to the fleet bridge. */
export async function hostVeth(host: { name: string }): Promise<string> {
  const fleet = await readFleetInstance();
  const found = fleet.hosts.find((candidate) => candidate.name === host.name);
  if (!found) throw new Error(`no host ${host.name} in fleet ${fleet.name}`);
  return found.veth;
}

/** An address in the fleet's subnet that no host has: nothing answers there. */
export async function unusedFleetAddress(): Promise<string> {
  const [first, second] = (await readFleetInstance()).gateway.split('.');
  return `${first}.${second}.250.250`;
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
