import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { hostname, release, uptime } from 'node:os';
import { promisify } from 'node:util';
import { AGENT_PROTOCOL_VERSION, type HostFacts } from '@drover/protocol';
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

async function systemdVersion(): Promise<string | null> {
  try {
    const { stdout } = await run('systemctl', ['--version'], { timeout: 5_000 });
    return stdout.split('\n')[0]?.trim().slice(0, 100) || null;
  } catch {
    return null;
  }
}

/** What the agent tells the server about its host (at enrolment and with every heartbeat). */
export async function hostFacts(): Promise<HostFacts> {
  const [os, systemd] = await Promise.all([osName(), systemdVersion()]);
  return {
    hostname: hostname().slice(0, 253) || 'localhost',
    os,
    kernel: release().slice(0, 200),
    systemdVersion: systemd,
    uptimeSeconds: Math.max(0, Math.floor(uptime())),
    agentVersion: AGENT_VERSION,
    protocolVersion: AGENT_PROTOCOL_VERSION,
    runsAsRoot: process.getuid?.() === 0,
  };
}
