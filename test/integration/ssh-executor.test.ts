import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Logger, LoggerService } from '@nestjs/common';
import { parseConfig } from '../../src/config/config.schema';
import {
  CommandTimeoutError,
  HostKeyMismatchError,
  HostKeyNotPinnedError,
  HostUnreachableError,
  SshError,
  SudoRefusedError,
} from '../../src/infra/ssh/ssh-errors';
import { ExecResult, SshExecutor, SshTarget } from '../../src/infra/ssh/ssh-executor';
import { testEnv } from '../support/env';
import { setFrozen, setPartitioned } from '../support/faults';
import { FleetInventory, hostCgroup, readFleetInventory, sshExec } from '../support/fleet';
import { waitUntil } from '../support/wait';

type FleetHost = FleetInventory['hosts'][number];

const run = promisify(execFile);

const CONNECT_TIMEOUT_MS = 2_000;
const KEEPALIVE_INTERVAL_MS = 1_000;
const MAX_SESSIONS = 4;
/** Slack for a shared 2-vCPU machine on top of every deadline the executor promises. */
const MARGIN_MS = 1_500;

function newExecutor(overrides: Record<string, string> = {}): SshExecutor {
  return new SshExecutor(
    parseConfig({
      DATABASE_URL: testEnv.postgresServerUrl,
      REDIS_URL: testEnv.redisUrl,
      SSH_PRIVATE_KEY_PATH: path.join(testEnv.fleetState, 'ssh', 'id_ed25519'),
      SSH_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      SSH_COMMAND_TIMEOUT_MS: '15000',
      SSH_KEEPALIVE_INTERVAL_MS: String(KEEPALIVE_INTERVAL_MS),
      SSH_POOL_MAX_CONNECTIONS: '10',
      SSH_MAX_SESSIONS_PER_HOST: String(MAX_SESSIONS),
      SSH_IDLE_TIMEOUT_MS: '60000',
      ...overrides,
    }),
  );
}

/** Runs `body` with a fresh executor (own pool, own stats) and always shuts it down. */
async function withExecutor<T>(body: (ssh: SshExecutor) => Promise<T>, overrides?: Record<string, string>): Promise<T> {
  const ssh = newExecutor(overrides);
  try {
    return await body(ssh);
  } finally {
    await ssh.onModuleDestroy();
  }
}

function targetOf(host: FleetHost, changes: Partial<SshTarget> = {}): SshTarget {
  const { name, address, port, sshUser, hostKeyFingerprint } = host;
  return { hostId: `test-${name}`, name, address, port, sshUser, hostKeyFingerprint, ...changes };
}

/** A shell command on `host` through a separate client (the fleet's own helper, not the executor). */
async function onHost(host: FleetHost, command: string): Promise<string> {
  const result = await sshExec(host, host.hostKeyFingerprint, command);
  assert.equal(result.code, 0, `${command} on ${host.name}: ${result.stderr}`);
  return result.stdout;
}

/** Waits until `sleep SECONDS` runs on the host: a command is underway there, not merely sent. */
async function untilSleeping(host: FleetHost, seconds: number): Promise<void> {
  // '[s]leep' matches the sleep but not this pgrep's own command line.
  const running = async () =>
    (await onHost(host, `pgrep -f '[s]leep ${seconds}$' >/dev/null && echo yes || echo no`)).trim();
  await waitUntil(async () => (await running()) === 'yes', `sleep ${seconds} runs on ${host.name}`, 15_000);
}

/** The client port of the SSH connection a command ran on (from sshd's SSH_CONNECTION). */
function clientPort(sshConnection: string): string {
  const port = sshConnection.trim().split(' ')[1];
  assert.ok(port, `SSH_CONNECTION: ${sshConnection}`);
  return port;
}

/** Fails unless `promise` rejects with one of `types` within `maxMs`; returns the error and the time taken. */
async function rejectsWithin<E extends SshError>(
  promise: Promise<unknown>,
  types: (abstract new (...args: never[]) => E)[],
  maxMs: number,
): Promise<{ error: E; elapsedMs: number }> {
  const startedAt = performance.now();
  const error = await promise.then(
    (result) => assert.fail(`expected a rejection, got ${JSON.stringify(result)}`),
    (error: unknown) => error,
  );
  const elapsedMs = Math.round(performance.now() - startedAt);
  assert.ok(
    types.some((type) => error instanceof type),
    `expected ${types.map((type) => type.name).join(' or ')}, got ${String(error)}`,
  );
  assert.ok(elapsedMs <= maxMs, `failed after ${elapsedMs} ms, expected within ${maxMs} ms`);
  return { error: error as E, elapsedMs };
}

/**
 * Kills the sshd session serving the connection from `port`: the connection drops server-side.
 * Done from outside the host (this machine's PIDs, the host's network namespace), so it also works
 * while the host is cut off.
 */
async function killSshSession(host: FleetHost, port: string): Promise<void> {
  const ownNetwork = await readlink('/proc/self/ns/net');
  const members = await readFile(`${await hostCgroup(host, 'freezer')}/cgroup.procs`, 'utf8');
  // Every process of the host but systemd-nspawn itself is in the host's network namespace.
  let inHost: string | undefined;
  for (const pid of members.trim().split('\n')) {
    if ((await readlink(`/proc/${pid}/ns/net`).catch(() => ownNetwork)) !== ownNetwork) inHost = pid;
  }
  assert.ok(inHost, `a process of ${host.name} in its own network namespace`);
  const filter = `( dport = :${port} )`;
  const sockets = await run('nsenter', ['-t', inHost, '-n', 'ss', '-Htnp', 'state', 'established', filter]);
  const pids = new Set([...sockets.stdout.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1])));
  assert.ok(pids.size > 0, `an sshd session serves port ${port} on ${host.name}`);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
}

/** Keeps what SshExecutor logs, so a test can tell which path a command took. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(...parts: unknown[]): void {
    this.lines.push(JSON.stringify(parts));
  }
  error(...parts: unknown[]): void {
    this.lines.push(JSON.stringify(parts));
  }
  warn(...parts: unknown[]): void {
    this.lines.push(JSON.stringify(parts));
  }
}

describe('SshExecutor on the booted fleet', () => {
  let hosts: FleetHost[];
  const timings: Record<string, number> = {};
  const logs = new CapturingLogger();

  before(async () => {
    Logger.overrideLogger(logs);
    hosts = (await readFleetInventory()).hosts;
    assert.ok(hosts.length >= 3, 'the fleet has at least 3 hosts');
  });

  after(() => {
    // Measured on this run, for the record.
    process.stdout.write(`ssh-executor timings (ms): ${JSON.stringify(timings, null, 2)}\n`);
  });

  it('returns exit status, stdout and stderr; a non-zero exit is a result; argv arrives verbatim', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[0]!;
      const failed = await ssh.exec(targetOf(host), ['sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.deepEqual({ ...failed, durationMs: 0 }, {
        exitCode: 3,
        signal: null,
        stdout: 'out\n',
        stderr: 'err\n',
        durationMs: 0,
        truncated: false,
        hostKeyFingerprint: host.hostKeyFingerprint,
        connectionReused: false,
      } satisfies ExecResult);

      const marker = `/tmp/drover-injected-${randomUUID()}`;
      const hostile = [
        'two words',
        "it's",
        '"double"',
        '$(id)',
        '`id`',
        `x; touch ${marker}`,
        `&& touch ${marker}`,
        '*',
        '$HOME',
        'back\\slash',
        'new\nline',
        '',
        'ünïcødé ✓',
        '-n',
      ];
      const echoed = await ssh.exec(targetOf(host), ['printf', '%s\\n', ...hostile]);
      assert.equal(echoed.exitCode, 0, echoed.stderr);
      assert.equal(echoed.stdout, hostile.map((argument) => `${argument}\n`).join(''));
      assert.equal(echoed.connectionReused, true);
      assert.equal((await ssh.exec(targetOf(host), ['test', '-e', marker])).exitCode, 1, 'nothing was injected');

      const reading = await ssh.exec(targetOf(host), ['cat'], { timeoutMs: 5_000 });
      assert.deepEqual([reading.exitCode, reading.stdout], [0, ''], 'stdin is empty: nothing waits for input');

      const killed = await ssh.exec(targetOf(host), ['sh', '-c', 'kill -TERM $$']);
      assert.equal(killed.exitCode, null);
      assert.equal(killed.signal, 'SIGTERM');

      await assert.rejects(ssh.exec(targetOf(host), []), /empty argv/);
      await assert.rejects(ssh.exec(targetOf(host), ['echo', 'a\0b']), /NUL byte/);
    });
  });

  it('runs a sequence in one session: each step its own exit status, stdout and stderr, argv verbatim', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[0]!;
      const before = ssh.stats().commandsRun;
      const ran = await ssh.execSequence(targetOf(host), [
        ['sh', '-c', 'printf "no newline"; printf "err" >&2; exit 3'],
        ['printf', '%s\\n', "it's", '$(id)', 'new\nline'],
        ['sh', '-c', 'cat; echo "stdin: $?"'],
        ['false'],
      ]);
      assert.equal(ssh.stats().commandsRun - before, 1, 'one session for the whole sequence');
      assert.deepEqual(
        ran.steps.map(({ exitCode, stdout, stderr }) => ({ exitCode, stdout, stderr })),
        [
          { exitCode: 3, stdout: 'no newline', stderr: 'err' },
          { exitCode: 0, stdout: "it's\n$(id)\nnew\nline\n", stderr: '' },
          { exitCode: 0, stdout: 'stdin: 0\n', stderr: '' },
          { exitCode: 1, stdout: '', stderr: '' },
        ],
      );
      assert.equal(ran.hostKeyFingerprint, host.hostKeyFingerprint);
      assert.equal(ran.proceeded, undefined);
    });
  });

  it('pauses a sequence until told to go on; without a go the rest never runs on the host', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[0]!;
      const file = `/tmp/drover-sequence-${randomUUID()}`;
      const steps = [
        ['echo', 'read'],
        ['touch', file],
        ['echo', 'after'],
      ];
      const exists = async () => (await ssh.exec(targetOf(host), ['test', '-e', file])).exitCode === 0;

      const seen: string[][] = [];
      const stopped = await ssh.execSequence(targetOf(host), steps, {
        confirm: {
          after: 1,
          proceed: async (done) => {
            seen.push(done.map((step) => step.stdout));
            await sleep(300);
            // Nothing after the pause has run while the caller decides.
            assert.equal(await exists(), false);
            return false;
          },
        },
      });
      assert.deepEqual(seen, [['read\n']]);
      assert.equal(stopped.proceeded, false);
      assert.deepEqual(
        stopped.steps.map((step) => step.stdout),
        ['read\n'],
      );
      assert.equal(await exists(), false, 'a refused sequence did not go on');

      await assert.rejects(
        ssh.execSequence(targetOf(host), steps, {
          confirm: {
            after: 1,
            proceed: () => Promise.reject(new Error('the database is away')),
          },
        }),
        /the database is away/,
      );
      assert.equal(await exists(), false, 'a sequence whose caller failed did not go on');

      const went = await ssh.execSequence(targetOf(host), steps, {
        confirm: { after: 1, proceed: () => Promise.resolve(true) },
      });
      assert.equal(went.proceeded, true);
      assert.deepEqual(
        went.steps.map((step) => [step.exitCode, step.stdout]),
        [
          [0, 'read\n'],
          [0, ''],
          [0, 'after\n'],
        ],
      );
      assert.equal(await exists(), true);
      await ssh.exec(targetOf(host), ['rm', '-f', file]);

      await assert.rejects(
        ssh.execSequence(targetOf(host), steps, { confirm: { after: 3, proceed: () => Promise.resolve(true) } }),
        /confirm.after/,
      );
    });
  });

  it('bounds the output held before a pause: past maxOutputBytes it never asks, never goes on, and fails', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[0]!;
      const file = `/tmp/drover-sequence-${randomUUID()}`;
      let asked = false;
      await assert.rejects(
        ssh.execSequence(
          targetOf(host),
          [['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x'], ['true'], ['touch', file]],
          {
            maxOutputBytes: 65_536,
            confirm: {
              after: 2,
              proceed: () => {
                asked = true;
                return Promise.resolve(true);
              },
            },
          },
        ),
        /printed more than 65536 bytes on one stream; the rest was not run/,
      );
      assert.equal(asked, false, 'the caller was never asked about output it could not see whole');
      assert.equal((await ssh.exec(targetOf(host), ['test', '-e', file])).exitCode, 1, 'the rest never ran');
    });
  });

  it('ignores a "go" sent later than the timeout after the session began (a caller that was paused)', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[0]!;
      const file = `/tmp/drover-sequence-${randomUUID()}`;
      const late = ssh.execSequence(targetOf(host), [['true'], ['touch', file]], {
        timeoutMs: 2_000,
        confirm: {
          after: 1,
          proceed: () => {
            // This process stands still past the timeout, as a stopped worker would, then says go.
            const until = Date.now() + 3_500;
            while (Date.now() < until) {
              // (busy: no timer of ours can fire meanwhile)
            }
            return Promise.resolve(true);
          },
        },
      });
      await assert.rejects(late, CommandTimeoutError);
      assert.equal((await ssh.exec(targetOf(host), ['test', '-e', file])).exitCode, 1, 'the late go was ignored');
    });
  });

  it('runs 10 commands on a host, some concurrent, over exactly one SSH connection', async () => {
    const host = hosts[1]!;
    const acceptedLines = `journalctl -u ssh -o cat --no-pager | grep 'Accepted publickey'`;
    const before = (await onHost(host, `${acceptedLines} | wc -l`)).trim();

    const { ports, stats, reused } = await withExecutor(async (ssh) => {
      const target = targetOf(host);
      const results: ExecResult[] = [];
      for (let i = 0; i < 3; i++) results.push(await ssh.exec(target, ['printenv', 'SSH_CONNECTION']));
      results.push(
        ...(await Promise.all(Array.from({ length: 7 }, () => ssh.exec(target, ['printenv', 'SSH_CONNECTION'])))),
      );
      return {
        ports: results.map((result) => clientPort(result.stdout)),
        stats: ssh.stats(),
        reused: results.map((result) => result.connectionReused),
      };
    });
    assert.deepEqual(stats, { connectionsOpened: 1, openConnections: 1, commandsRun: 10 });
    assert.equal(new Set(ports).size, 1, `every command ran on one TCP connection: ${ports.join(', ')}`);
    assert.deepEqual(reused, [false, ...Array<boolean>(9).fill(true)]);

    // Logins since `before`: the executor's one connection, and the one reading the journal now.
    const after = await onHost(host, `echo $SSH_CONNECTION; ${acceptedLines} | tail -n +${Number(before) + 1}`);
    const [ownConnection, ...logins] = after.trim().split('\n');
    const loginPorts = logins.map((line) => /port (\d+)/.exec(line)?.[1]).sort();
    assert.deepEqual(loginPorts, [ports[0], clientPort(ownConnection!)].sort(), logins.join('\n'));
  });

  it(`queues commands beyond SSH_MAX_SESSIONS_PER_HOST (${MAX_SESSIONS}) on the one connection`, async () => {
    await withExecutor(async (ssh) => {
      const target = targetOf(hosts[1]!);
      const startedAt = performance.now();
      const results = await Promise.all(
        Array.from({ length: 2 * MAX_SESSIONS }, () =>
          ssh.exec(target, ['sh', '-c', 'date +%s%N; sleep 0.5; date +%s%N']),
        ),
      );
      timings['8 × sleep 0.5 with 4 sessions'] = Math.round(performance.now() - startedAt);
      const intervals = results.map((result) => result.stdout.trim().split('\n').map(BigInt) as [bigint, bigint]);
      const mostAtOnce = Math.max(
        ...intervals.map(([start]) => intervals.filter(([from, to]) => from <= start && start < to).length),
      );
      assert.ok(mostAtOnce <= MAX_SESSIONS, `${mostAtOnce} commands ran at once, more than ${MAX_SESSIONS}`);
      assert.ok(mostAtOnce > 1, 'commands ran side by side on the one connection');
      assert.equal(ssh.stats().connectionsOpened, 1);
    });
  });

  it('refuses a host whose key is not the pinned one, running nothing', async () => {
    await withExecutor(async (ssh) => {
      const [host, other] = [hosts[0]!, hosts[1]!];
      const marker = `/tmp/drover-mismatch-${randomUUID()}`;
      const { error } = await rejectsWithin(
        ssh.exec(targetOf(host, { hostKeyFingerprint: other.hostKeyFingerprint }), ['touch', marker], {
          trustOnFirstUse: true, // ignored: the host has a pinned key
        }),
        [HostKeyMismatchError],
        CONNECT_TIMEOUT_MS,
      );
      assert.equal(error.hostName, host.name);
      assert.equal(error.expectedFingerprint, other.hostKeyFingerprint);
      assert.equal(error.presentedFingerprint, host.hostKeyFingerprint);
      assert.equal(error.kind, 'host_key_mismatch');
      assert.equal(await onHost(host, `test -e ${marker}; echo $?`), '1\n', 'the command did not run');
      assert.equal(ssh.stats().connectionsOpened, 0, 'the refused connection never became usable');

      const fine = await ssh.exec(targetOf(host), ['true']);
      assert.equal(fine.exitCode, 0, 'the refused connection was not pooled');
      assert.equal(fine.connectionReused, false);
    });
  });

  it('refuses a host without a pinned key unless trusting on first use, and reports the key it trusted', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[2]!;
      const unpinned = targetOf(host, { hostKeyFingerprint: null });
      const notPinned = await rejectsWithin(ssh.exec(unpinned, ['true']), [HostKeyNotPinnedError], 100);
      assert.equal(notPinned.error.hostName, host.name);
      assert.equal(notPinned.error.kind, 'host_key_not_pinned');
      assert.equal(ssh.stats().connectionsOpened, 0, 'no connection was even attempted');

      const trusted = await ssh.exec(unpinned, ['hostname'], { trustOnFirstUse: true });
      assert.equal(trusted.stdout, `${host.name}\n`);
      assert.equal(trusted.hostKeyFingerprint, host.hostKeyFingerprint);
      // The first-use connection is not handed to a caller that did not ask to trust.
      await assert.rejects(ssh.exec(unpinned, ['true']), HostKeyNotPinnedError);
    });
  });

  it('runs through sudo -n for a non-root user and reports a refusal as SudoRefusedError', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[0]!;
      const marker = `/tmp/drover-sudo-${randomUUID()}`;
      const { error } = await rejectsWithin(
        ssh.exec(targetOf(host, { sshUser: 'drover' }), ['touch', marker]),
        [SudoRefusedError],
        CONNECT_TIMEOUT_MS + MARGIN_MS,
      );
      assert.equal(error.hostName, host.name);
      assert.equal(error.user, 'drover');
      assert.equal(error.command, `'touch' '${marker}'`);
      assert.match(error.message, new RegExp(`host ${host.name}.*user drover.*touch`));
      assert.equal(await onHost(host, `test -e ${marker}; echo $?`), '1\n');
    });
  });

  it('fails on a frozen host within the connect timeout', async () => {
    const host = hosts[2]!;
    await withExecutor(async (ssh) => {
      try {
        await setFrozen(host, true);
        const { error, elapsedMs } = await rejectsWithin(
          ssh.exec(targetOf(host), ['true']),
          [HostUnreachableError],
          CONNECT_TIMEOUT_MS + MARGIN_MS,
        );
        timings['frozen host: connect fails after'] = elapsedMs;
        assert.equal(error.commandMayHaveStarted, false);
        assert.equal(error.kind, 'unreachable');
        assert.match(error.message, new RegExp(`no SSH handshake .* within ${CONNECT_TIMEOUT_MS} ms`));

        // Shutting down does not wait for a connect attempt that hangs.
        const pending = ssh.exec(targetOf(host), ['true']).catch((failure: unknown) => failure);
        await sleep(200);
        const startedAt = performance.now();
        await ssh.onModuleDestroy();
        assert.ok((await pending) instanceof HostUnreachableError);
        timings['shutdown with a connect attempt hanging on a frozen host'] = Math.round(performance.now() - startedAt);
        // It gave up on the attempt rather than waiting out the connect timeout.
        assert.ok(performance.now() - startedAt < CONNECT_TIMEOUT_MS);
        await assert.rejects(ssh.exec(targetOf(host), ['true']), /shut down/);
      } finally {
        await setFrozen(host, false);
      }
    });
  });

  it('runs at most SSH_MAX_HANDSHAKES handshakes at once; a waiting one gets its whole connect timeout', async () => {
    const [frozen, waiting, waitingToo] = [hosts[2]!, hosts[0]!, hosts[1]!];
    await withExecutor(
      async (ssh) => {
        try {
          await setFrozen(frozen, true);
          const startedAt = performance.now();
          // The frozen host takes the only turn and keeps it for its whole connect timeout.
          const stuck = ssh.exec(targetOf(frozen), ['true']).then(
            () => assert.fail('a frozen host answered'),
            (error: unknown) => ({ error, atMs: performance.now() - startedAt }),
          );
          await sleep(100);
          const answered = await Promise.all(
            [waiting, waitingToo].map((host) =>
              ssh
                .exec(targetOf(host), ['hostname'])
                .then((result) => ({ result, atMs: performance.now() - startedAt })),
            ),
          );
          const failed = await stuck;
          assert.ok(failed.error instanceof HostUnreachableError, String(failed.error));
          assert.match(failed.error.message, /no SSH handshake/);
          for (const [index, { result, atMs }] of answered.entries()) {
            // Connected only after the frozen host's handshake gave up: it waited for its turn,
            // and its own connect timeout (which that wait exceeds) started with the turn.
            assert.equal(result.stdout.trim(), [waiting, waitingToo][index]!.name);
            assert.ok(
              atMs >= failed.atMs,
              `${index}: answered at ${atMs} ms, before the turn was free (${failed.atMs} ms)`,
            );
          }
          timings['two handshakes waiting behind a frozen host: done after'] = Math.round(
            Math.max(...answered.map(({ atMs }) => atMs)),
          );
        } finally {
          await setFrozen(frozen, false);
        }
      },
      { SSH_MAX_HANDSHAKES: '1' },
    );
  });

  it('fails on a host that freezes with a pooled connection within the command timeout', async () => {
    const host = hosts[2]!;
    await withExecutor(async (ssh) => {
      const timeoutMs = 1_500;
      assert.equal((await ssh.exec(targetOf(host), ['true'])).exitCode, 0);
      try {
        await setFrozen(host, true);
        const { error, elapsedMs } = await rejectsWithin(
          ssh.exec(targetOf(host), ['touch', '/tmp/never'], { timeoutMs }),
          [HostUnreachableError],
          timeoutMs + MARGIN_MS,
        );
        timings[`frozen before the command, timeoutMs ${timeoutMs}: fails after`] = elapsedMs;
        assert.match(error.message, /no answer to starting the command/);
        assert.equal(ssh.stats().openConnections, 0, 'the hung connection was dropped');
      } finally {
        await setFrozen(host, false);
      }
    });
  });

  it('fails on a host that freezes mid-command within the command timeout; keepalive drops the connection', async () => {
    const host = hosts[2]!;
    await withExecutor(async (ssh) => {
      // Long enough to freeze the host while it runs, however slowly the command got going.
      const timeoutMs = 6_000;
      const failed = rejectsWithin<CommandTimeoutError | HostUnreachableError>(
        ssh.exec(targetOf(host), ['sleep', '21'], { timeoutMs }),
        [CommandTimeoutError, HostUnreachableError],
        timeoutMs + MARGIN_MS,
      );
      try {
        await untilSleeping(host, 21);
        await setFrozen(host, true);
        const frozenAt = performance.now();
        const { error, elapsedMs } = await failed;
        timings[`frozen mid-command with timeoutMs ${timeoutMs}: ${error.name} after`] = elapsedMs;
        // Three unanswered keepalives, one per interval, and the 4th tick drops the connection.
        while (
          ssh.stats().openConnections > 0 &&
          performance.now() - frozenAt < 4 * KEEPALIVE_INTERVAL_MS + MARGIN_MS
        ) {
          await sleep(50);
        }
        timings['keepalive dropped the frozen connection, after freezing'] = Math.round(performance.now() - frozenAt);
        assert.equal(ssh.stats().openConnections, 0, 'keepalive noticed the dead peer');
      } finally {
        await setFrozen(host, false);
      }
      const again = await ssh.exec(targetOf(host), ['true']);
      assert.equal(again.exitCode, 0, 'the host is usable again once thawed');
      assert.equal(again.connectionReused, false);
    });
  });

  it('reports refused connections and unknown names as unreachable, before anything started', async () => {
    await withExecutor(async (ssh) => {
      const refused = await rejectsWithin(
        ssh.exec(targetOf(hosts[0]!, { port: 1 }), ['true']),
        [HostUnreachableError],
        CONNECT_TIMEOUT_MS,
      );
      assert.match(refused.error.message, /ECONNREFUSED/);
      assert.equal(refused.error.commandMayHaveStarted, false);
      const unknown = await rejectsWithin(
        ssh.exec(targetOf(hosts[0]!, { address: 'no-such-host.invalid' }), ['true']),
        [HostUnreachableError],
        CONNECT_TIMEOUT_MS + MARGIN_MS,
      );
      assert.match(unknown.error.message, /ENOTFOUND|EAI_AGAIN/);
    });
  });

  it('shares one connect attempt, closes idle connections, and evicts the least recently used when full', async () => {
    const [first, second] = [targetOf(hosts[0]!), targetOf(hosts[1]!)];
    await withExecutor(
      async (ssh) => {
        const concurrent = await Promise.all(Array.from({ length: 5 }, () => ssh.exec(first, ['true'])));
        assert.deepEqual(ssh.stats(), { connectionsOpened: 1, openConnections: 1, commandsRun: 5 });
        assert.equal(concurrent.filter((result) => !result.connectionReused).length, 1);

        // The pool holds one connection: a second host takes the idle one's place.
        await ssh.exec(second, ['true']);
        assert.deepEqual(ssh.stats(), { connectionsOpened: 2, openConnections: 1, commandsRun: 6 });

        // An inventory change (another login user) is another connection.
        await assert.rejects(ssh.exec({ ...second, sshUser: 'drover' }, ['true']), SudoRefusedError);
        assert.equal(ssh.stats().connectionsOpened, 3);

        // All busy: the next host waits until the running command ends, then takes its place.
        const startedAt = performance.now();
        const busy = ssh.exec(first, ['sleep', '1']);
        const waiting = await ssh.exec(second, ['true']);
        const waitedMs = Math.round(performance.now() - startedAt);
        timings['pool full and busy: the next host waited'] = waitedMs;
        assert.equal((await busy).exitCode, 0);
        assert.equal(waiting.exitCode, 0);
        assert.ok(waitedMs >= 1_000, `waited for the busy connection (${waitedMs} ms)`);
        assert.equal(ssh.stats().openConnections, 1);

        // Idle for SSH_IDLE_TIMEOUT_MS: closed (however late a busy machine runs the timer).
        await waitUntil(() => ssh.stats().openConnections === 0, 'the idle connection was closed');
        assert.equal((await ssh.exec(second, ['true'])).connectionReused, false);
      },
      { SSH_POOL_MAX_CONNECTIONS: '1', SSH_IDLE_TIMEOUT_MS: '1000' },
    );
  });

  it('kills a command that outlives its timeout and keeps what it printed', async () => {
    await withExecutor(async (ssh) => {
      const target = targetOf(hosts[0]!);
      const timeoutMs = 1_500;
      const { error, elapsedMs } = await rejectsWithin(
        ssh.exec(target, ['sh', '-c', 'echo started; echo warming up >&2; sleep 30'], { timeoutMs }),
        [CommandTimeoutError],
        timeoutMs + MARGIN_MS,
      );
      timings['sleep 30 with timeoutMs 1500: CommandTimeoutError after'] = elapsedMs;
      assert.ok(elapsedMs >= timeoutMs - 50, `not before the deadline (${elapsedMs} ms)`);
      assert.equal(error.stdout, 'started\n');
      assert.equal(error.stderr, 'warming up\n');
      assert.equal(error.timeoutMs, timeoutMs);
      assert.equal(error.kind, 'timed_out');

      // '[s]leep 30' matches the command (and its sh) but not the pgrep command line itself.
      const startedAt = performance.now();
      let left = await ssh.exec(target, ['pgrep', '-af', '[s]leep 30']);
      while (left.exitCode === 0 && performance.now() - startedAt < 5_000) {
        await sleep(100);
        left = await ssh.exec(target, ['pgrep', '-af', '[s]leep 30']);
      }
      timings['remote sleep gone after the timeout error, within'] = Math.round(performance.now() - startedAt);
      assert.equal(left.exitCode, 1, `the remote command is gone: ${left.stdout}`);
      assert.equal(left.connectionReused, true, 'the connection survived the timeout');
    });
  });

  it('kills a sequence whose step outlives the timeout: the rest never runs, the step is gone from the host', async () => {
    await withExecutor(async (ssh) => {
      const target = targetOf(hosts[0]!);
      const timeoutMs = 1_500;
      const file = `/tmp/drover-sequence-${randomUUID()}`;
      const { error } = await rejectsWithin(
        ssh.execSequence(
          target,
          [
            ['echo', 'first'],
            ['sh', '-c', 'echo started; sleep 31'],
            ['touch', file],
          ],
          {
            timeoutMs,
          },
        ),
        [CommandTimeoutError],
        timeoutMs + MARGIN_MS,
      );
      assert.match(error.stdout, /^first\n[^]*started\n$/);
      const startedAt = performance.now();
      let left = await ssh.exec(target, ['pgrep', '-af', '[s]leep 31']);
      while (left.exitCode === 0 && performance.now() - startedAt < 5_000) {
        await sleep(100);
        left = await ssh.exec(target, ['pgrep', '-af', '[s]leep 31']);
      }
      assert.equal(left.exitCode, 1, `the step is gone: ${left.stdout}`);
      assert.equal((await ssh.exec(target, ['test', '-e', file])).exitCode, 1, 'the step after it never ran');
    });
  });

  it('reconnects after the pooled connection is killed server-side, and reports a drop mid-command', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[1]!;
      const target = targetOf(host);
      const first = clientPort((await ssh.exec(target, ['printenv', 'SSH_CONNECTION'])).stdout);
      await killSshSession(host, first);
      const afterKill = await ssh.exec(target, ['printenv', 'SSH_CONNECTION']);
      assert.equal(afterKill.exitCode, 0);
      assert.notEqual(clientPort(afterKill.stdout), first, 'a new connection');
      assert.equal(afterKill.connectionReused, false);
      assert.equal(ssh.stats().connectionsOpened, 2);

      const second = clientPort(afterKill.stdout);
      const dropped = rejectsWithin(ssh.exec(target, ['sleep', '22']), [HostUnreachableError], 20_000);
      await untilSleeping(host, 22);
      await killSshSession(host, second);
      const { error } = await dropped;
      assert.equal(error.commandMayHaveStarted, true);

      assert.equal((await ssh.exec(target, ['true'])).exitCode, 0);
      assert.equal(ssh.stats().connectionsOpened, 3);
    });
  });

  it('reconnects transparently when the pooled connection turns out dead only as a command is sent', async () => {
    await withExecutor(async (ssh) => {
      const host = hosts[2]!;
      const target = targetOf(host);
      const port = clientPort((await ssh.exec(target, ['printenv', 'SSH_CONNECTION'])).stdout);
      try {
        // The session dies while the host is cut off: its FIN is lost, the client still thinks the
        // connection is fine, and only the next command's packets (answered by a RST) reveal it.
        await setPartitioned(host, true);
        await killSshSession(host, port);
        await sleep(200);
      } finally {
        await setPartitioned(host, false);
      }
      const logged = logs.lines.length;
      const result = await ssh.exec(target, ['printenv', 'SSH_CONNECTION']);
      assert.equal(result.exitCode, 0);
      assert.notEqual(clientPort(result.stdout), port, 'the command ran on a new connection');
      assert.equal(result.connectionReused, false);
      assert.equal(ssh.stats().connectionsOpened, 2);
      assert.equal(ssh.stats().commandsRun, 2, 'the command ran once');
      assert.match(logs.lines.slice(logged).join('\n'), /reconnecting: could not start the command/);
    });
  });

  it('truncates output beyond maxOutputBytes to its head and tail, and streams all of it', async () => {
    await withExecutor(async (ssh) => {
      let streamed = 0;
      const result = await ssh.exec(targetOf(hosts[0]!), ['seq', '1', '100000'], {
        maxOutputBytes: 1_000,
        onData: (chunk, stream) => {
          assert.equal(stream, 'stdout');
          streamed += chunk.length;
        },
      });
      const total = 588_895; // bytes `seq 1 100000` prints
      assert.equal(result.exitCode, 0);
      assert.equal(result.truncated, true);
      assert.equal(streamed, total);
      assert.ok(result.stdout.startsWith('1\n2\n3\n'), result.stdout.slice(0, 20));
      assert.ok(result.stdout.endsWith('99999\n100000\n'), result.stdout.slice(-20));
      assert.match(
        result.stdout,
        new RegExp(`\\n\\[\\.\\.\\. ${total - 1_000} bytes of output dropped \\.\\.\\.\\]\\n`),
      );
      assert.equal(result.stderr, '');
    });
  });

  it('names the key path when the private key cannot be read', async () => {
    const missing = path.join(testEnv.fleetState, 'ssh', 'no-such-key');
    await withExecutor(
      (ssh) =>
        assert.rejects(
          ssh.exec(targetOf(hosts[0]!), ['true']),
          new RegExp(`cannot read the SSH private key ${missing}`),
        ),
      { SSH_PRIVATE_KEY_PATH: missing },
    );
  });
});
