/**
 * A fleet that exists only in memory, in place of the worker's SshExecutor: each host answers at
 * once, as the unit action's specs' FakeHost (@drover/systemd's fixture: one unit whose state the
 * systemctl verbs change as systemd would, with a journal of its starts). So the control plane's
 * own cost — queue, database, audit, the unit action's checks — is measured without any host's.
 * Only a benchmark builds one, by overriding the worker's provider (bench/control-plane-worker.ts):
 * no setting turns a worker into this.
 */
import type { UnitSnapshot } from '@drover/protocol';
import { parseSnapshot, type CommandResult } from '@drover/systemd';
import { FakeHost } from '@drover/systemd/fixtures/fake-host';
import { STATIC } from '@drover/systemd/fixtures/systemctl-show';
import type {
  ExecOptions,
  ExecResult,
  SequenceOptions,
  SequenceResult,
  SshExecutor,
} from '../../src/infra/ssh/ssh-executor';
import { SudoRefusedError } from '../../src/infra/ssh/ssh-errors';
import type { SshTarget } from '../../src/infra/ssh/ssh-target';

type Transport = Pick<SshExecutor, 'exec' | 'execSequence'>;

/** The argv a unit action runs are systemctl verbs and reads; discovery's listings are not modelled. */
const LISTINGS = new Set(['list-units', 'list-unit-files', 'cat']);

export class SimulatedFleet implements Transport {
  private readonly hosts = new Map<string, FakeHost>();
  /** Commands answered, for the report. */
  commands = 0;

  constructor(private readonly unit: (name: string) => UnitSnapshot = runningUnit) {}

  exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    this.commands += 1;
    // A post-action discovery lists every unit: refused as a host without the sudoers rule would
    // (the discovery logs it and stores nothing), so the inventory keeps its seeded units.
    if (options.asLoginUser || argv.some((word) => LISTINGS.has(word))) {
      return Promise.reject(new SudoRefusedError(target.name, target.sshUser, argv.join(' '), 'simulated'));
    }
    const host = this.host(target, argv);
    return host.run(argv, { timeoutMs: options.timeoutMs ?? 0 }).then((result) => this.result(target, result));
  }

  async execSequence(
    target: SshTarget,
    steps: readonly (readonly string[])[],
    options: SequenceOptions = {},
  ): Promise<SequenceResult> {
    this.commands += steps.length;
    const { confirm } = options;
    const host = this.host(target, steps.flat());
    const ran = await host.runSequence(steps, {
      timeoutMs: options.timeoutMs ?? 0,
      ...(confirm
        ? {
            pause: {
              after: confirm.after,
              proceed: (done: CommandResult[]) =>
                confirm.proceed(done.map((step) => ({ ...step, signal: null, durationMs: 0 }))),
            },
          }
        : {}),
    });
    return {
      steps: ran.steps.map((step) => ({ ...step, signal: null, durationMs: 0 })),
      ...(ran.proceeded === undefined ? {} : { proceeded: ran.proceeded }),
      durationMs: 0,
      hostKeyFingerprint: target.hostKeyFingerprint ?? 'SHA256:simulated',
      connectionReused: true,
    };
  }

  /** The host of the target, made on first contact with the unit its first command names. */
  private host(target: SshTarget, words: readonly string[]): FakeHost {
    let host = this.hosts.get(target.hostId);
    if (!host) {
      const unit = words.find((word) => /\.(service|socket|timer|target)$/.test(word)) ?? 'nginx.service';
      host = new FakeHost(this.unit(unit));
      host.name = target.name;
      this.hosts.set(target.hostId, host);
    }
    // The host's clock is this machine's, so its start limit counts real time.
    host.nowMs = Date.now();
    // Only what acted is kept: a log of every read would grow with every task.
    host.log.length = 0;
    return host;
  }

  private result(target: SshTarget, result: CommandResult): ExecResult {
    return {
      ...result,
      signal: null,
      durationMs: 0,
      truncated: false,
      hostKeyFingerprint: target.hostKeyFingerprint ?? 'SHA256:simulated',
      connectionReused: true,
    };
  }
}

/** The unit as a host runs it before anything acts: active, with systemd's default start limit (5 in 10 s). */
function runningUnit(name: string): UnitSnapshot {
  return {
    ...parseSnapshot(STATIC),
    id: name,
    mainPid: 100,
    unitFileState: 'enabled',
    invocationId: 'boot',
    canReload: true,
    startLimitBurst: 5,
    startLimitIntervalUSec: '10000000',
  };
}
