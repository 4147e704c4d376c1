import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { hostCgroup, hostVeth } from './fleet';

const run = promisify(execFile);

/** Freezes every process of a fleet host (a hung machine: TCP is still answered by the kernel). */
export async function setFrozen(host: { name: string }, frozen: boolean): Promise<void> {
  const state = `${await hostCgroup(host, 'freezer')}/freezer.state`;
  const wanted = frozen ? 'FROZEN' : 'THAWED';
  await writeFile(state, wanted);
  for (let i = 0; i < 250; i++) {
    const now = (await readFile(state, 'utf8')).trim();
    if (now === wanted) return;
    await sleep(20);
  }
  // A test that goes on with the host in another state than it asked for would test something else.
  throw new Error(`${host.name} is still not ${wanted} after 5 s`);
}

/** Cuts (or restores) a fleet host's link to the bridge: a network partition. */
export async function setPartitioned(host: { name: string }, partitioned: boolean): Promise<void> {
  await run('ip', ['link', 'set', await hostVeth(host), partitioned ? 'down' : 'up']);
}
