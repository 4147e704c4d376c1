import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { hostname, release, uptime } from 'node:os';
import { promisify } from 'node:util';
import { AGENT_PROTOCOL_VERSION, type HostFacts } from '@drover/protocol';
import type { SystemdBus } from './systemd-bus';
import { AGENT_VERSION } from './version';

const run = promisify(execFile);

/** PRETTY_NAME from os-release text ("Debian GNU/Linux 12 (bookworm)"), unquoted. */
export function prettyName(osRelease: string): string | null {
  const line = osRelease.split('\n').find((candidate) => candidate.startsWith('PRETTY_NAME='));
  if (!line) return null;
  const value = line.slice('PRETTY_NAME='.length).trim();
  return value.replace(/^(["'])(.*)\1$/, '$2').replace(/\\(.)/g, '$1');
}

async function osName(): Promise<string> {
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      const name = prettyName(await readFile(file, 'utf8'));
      if (name) return name.slice(0, 200);
    } catch {
      // The next candidate.
    }
  }
  return 'unknown';
}

/** The first line of `systemctl --version` ("systemd 252 (252.39-1~deb12u1)"). */
async function systemctlVersion(): Promise<string | null> {
  try {
    const { stdout } = await run('systemctl', ['--version'], { timeout: 5_000 });
    return stdout.split('\n')[0]?.trim() || null;
  } catch {
    return null;
  }
}

/**
 * What the agent tells the server about its host (at enrolment and with every heartbeat). With
 * `bus`, the systemd version is the running manager's, asked over D-Bus (a heartbeat every 15 s
 * then starts no process); without, or when the bus cannot tell, systemctl's.
 */
export async function hostFacts(bus?: SystemdBus): Promise<HostFacts> {
  const version = async () => ((await bus?.managerVersion()) ?? null) || systemctlVersion();
  const [os, systemd] = await Promise.all([osName(), version()]);
  return {
    hostname: hostname().slice(0, 253) || 'localhost',
    os,
    kernel: release().slice(0, 200),
    systemdVersion: systemd?.slice(0, 100) ?? null,
    uptimeSeconds: Math.max(0, Math.floor(uptime())),
    agentVersion: AGENT_VERSION,
    protocolVersion: AGENT_PROTOCOL_VERSION,
    runsAsRoot: process.getuid?.() === 0,
  };
}
