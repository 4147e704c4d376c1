import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Freezes every process of a fleet host (a hung machine: TCP is still answered by the kernel). */
export async function setFrozen(host: { name: string }, frozen: boolean): Promise<void> {
  const state = `/sys/fs/cgroup/freezer/drover-fleet/${host.name}/freezer.state`;
  await writeFile(state, frozen ? 'FROZEN' : 'THAWED');
  for (let i = 0; i < 100 && (await readFile(state, 'utf8')).trim() !== (frozen ? 'FROZEN' : 'THAWED'); i++) {
    await sleep(20);
  }
}

/** Cuts (or restores) a fleet host's link to the bridge: a network partition. */
export async function setPartitioned(host: { name: string }, partitioned: boolean): Promise<void> {
  await run('ip', ['link', 'set', `vb-${host.name}`, partitioned ? 'down' : 'up']);
}
