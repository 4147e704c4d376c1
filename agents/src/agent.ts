import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { AgentCommand, ReadCommand, TaskCommand } from '@drover/protocol';
import { AgentApi, ApiError, type ApiSettings, RevokedError } from './api';
import { backoffMs, pause } from './backoff';
import { type AgentConfig, ConfigError, loadConfig } from './config';
import { hostFacts } from './facts';
import { AgentKey, type AgentState, readAgentState, writeAgentState } from './identity';
import { TaskJournal } from './journal';
import { LocalHost } from './local-host';
import type { Logger } from './log';
import { carryOutRead } from './reads';
import { SystemdBus } from './systemd-bus';
import { TaskAttempt } from './task-attempt';
import { UnitWatch } from './unit-watch';

const run = promisify(execFile);

/** Commands carried out at once (tasks on the same unit still wait for each other). */
export const MAX_CONCURRENT_COMMANDS = 8;
/** On SIGTERM, how long running tasks may still take before the agent exits. */
const SHUTDOWN_GRACE_MS = 20_000;
/** How often a revoked agent asks again whether the server accepts it. */
const REVOKED_RETRY_MS = 5 * 60_000;
/** Tries at enrolling before `drover-agent enroll` gives up (run keeps trying). */
const ENROLL_TRIES = 5;
const READ_POST_TRIES = 3;

/** The agent cannot enrol: no join token, or the server refused it (used, expired, unknown). Exit 2. */
export class EnrollRefusedError extends Error {}

/** Config → what the API client needs (the pinned CA read from its file). */
export async function apiSettings(config: AgentConfig): Promise<ApiSettings> {
  if (config.caFile === undefined) return { server: config.server };
  try {
    return { server: config.server, ca: await readFile(config.caFile, 'utf8') };
  } catch (error) {
    throw new ConfigError(`caFile: cannot read ${config.caFile}: ${(error as Error).message}`);
  }
}

/**
 * The agent's identity with the server: agent.json when it enrolled already, else an enrolment with
 * the join token (its key generated first, so a retry presents the same key). `retry`: keep trying
 * while the server cannot be reached (run), or give up after a few tries (enroll).
 */
export async function ensureEnrolled(options: {
  config: AgentConfig;
  api: AgentApi;
  key: AgentKey;
  joinToken: string | undefined;
  log: Logger;
  retry: 'forever' | 'few';
  signal?: AbortSignal;
}): Promise<AgentState> {
  const { config, api, key, joinToken, log } = options;
  const known = await readAgentState(config.stateDir);
  if (known) {
    if (known.server !== config.server) {
      log.warn('the config names another server than the one this agent enrolled with', {
        enrolledWith: known.server,
        server: config.server,
      });
    }
    return known;
  }
  if (!joinToken) {
    throw new EnrollRefusedError(
      'this agent has not enrolled yet and has no join token: pass --join-token, set DROVER_JOIN_TOKEN or joinToken in the config',
    );
  }
  for (let failures = 0; ;) {
    try {
      const enrolled = await api.enroll({ joinToken, publicKey: key.publicKey, facts: await hostFacts() });
      const state: AgentState = {
        agentId: enrolled.agentId,
        hostId: enrolled.hostId,
        hostName: enrolled.hostName,
        server: config.server,
      };
      await writeAgentState(config.stateDir, state);
      log.info('enrolled', { ...state });
      return state;
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        throw new EnrollRefusedError(
          `the server refused the join token (used, expired or unknown: ask for a new one): ${error.message}`,
          { cause: error },
        );
      }
      failures++;
      if (options.retry === 'few' && failures >= ENROLL_TRIES) throw error;
      const waitMs = backoffMs(failures);
      log.warn('could not enrol; trying again', { err: error, retryInMs: waitMs });
      await pause(waitMs, options.signal);
      if (options.signal?.aborted) throw new Error('stopped before enrolling', { cause: error });
    }
  }
}

/**
 * The agent's main loop: heartbeats, the long poll for commands, and the commands themselves (up to
 * MAX_CONCURRENT_COMMANDS at once, one at a time per unit). Stops on stop() (SIGTERM): no new
 * commands, running tasks get SHUTDOWN_GRACE_MS to finish.
 */
export class DroverAgent {
  private readonly stopping = new AbortController();
  private readonly giveUp = new AbortController();
  private readonly running = new Set<Promise<void>>();
  private readonly attempts = new Set<TaskAttempt>();
  private readonly unitQueues = new Map<string, Promise<void>>();
  private readonly systemd: SystemdBus;
  private readonly host: LocalHost;
  private api!: AgentApi;
  private journal!: TaskJournal;
  private revoked: Promise<void> | null = null;
  private notifiedReady = false;
  private toldOutdated = false;
  private slotFreed: (() => void) | null = null;

  constructor(
    private config: AgentConfig,
    private readonly configFile: string,
    private readonly log: Logger,
  ) {
    this.systemd = new SystemdBus({ log });
    this.host = new LocalHost({ answer: (argv, timeoutMs) => this.systemd.answer(argv, timeoutMs) });
  }

  /** Runs until stop(); resolves with the exit code. */
  async run(joinToken: string | undefined): Promise<number> {
    const { config, log } = this;
    this.api = new AgentApi(await apiSettings(config), log);
    const key = await AgentKey.loadOrCreate(config.stateDir);
    const state = await ensureEnrolled({
      config,
      api: this.api,
      key,
      joinToken,
      log,
      retry: 'forever',
      signal: this.stopping.signal,
    });
    await this.useKey(state.agentId, key);
    this.journal = await TaskJournal.open(path.join(config.stateDir, 'journal.jsonl'));
    if (this.journal.skippedLines > 0) {
      log.warn('skipped unreadable lines of the journal', { lines: this.journal.skippedLines });
    }
    log.info('running', { agentId: state.agentId, host: state.hostName, server: config.server });
    const heartbeats = this.heartbeats();
    const watching = new UnitWatch(this.host, (report) => this.api.reportUnits(report), log).run(this.stopping.signal);
    await this.poll();
    await heartbeats;
    await watching;
    await this.drain();
    this.systemd.close();
    await this.journal.close();
    await this.api.close();
    log.info('stopped');
    return 0;
  }

  /** SIGTERM: no new commands; run() resolves once running tasks ended (or the grace passed). */
  stop(): void {
    if (this.stopping.signal.aborted) return;
    this.log.info('stopping: no new commands; running tasks get up to 20 s');
    this.stopping.abort();
    this.slotFreed?.();
  }

  /** SIGHUP: the config file read again; on an error the old one stays. */
  async reload(): Promise<void> {
    try {
      const next = await loadConfig(this.configFile);
      const settings = await apiSettings(next);
      if (next.stateDir !== this.config.stateDir) {
        this.log.warn('stateDir changes only with a restart; keeping the old one', { stateDir: this.config.stateDir });
      }
      this.config = { ...next, stateDir: this.config.stateDir };
      this.log.level = next.logLevel;
      this.api?.configure(settings);
      this.log.info('reloaded the config', { file: this.configFile });
    } catch (error) {
      this.log.error('could not reload the config; keeping the old one', { err: error });
    }
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async heartbeats(): Promise<void> {
    while (!this.stopped) {
      if (!this.revoked) {
        try {
          const { outdated } = await this.api.heartbeat(await hostFacts(this.systemd), this.stopping.signal);
          this.notifyReady();
          if (outdated && !this.toldOutdated) {
            this.log.warn('the server speaks a newer protocol than this agent: upgrade the agent');
          }
          this.toldOutdated = outdated;
        } catch (error) {
          if (error instanceof RevokedError) this.enterRevoked(error);
          else if (!this.stopped) this.log.warn('heartbeat failed', { err: error });
        }
      }
      await pause(this.config.heartbeatMs, this.stopping.signal);
    }
  }

  private async poll(): Promise<void> {
    for (let failures = 0; !this.stopped;) {
      if (this.revoked) {
        await this.revoked;
        continue;
      }
      while (this.running.size >= MAX_CONCURRENT_COMMANDS && !this.stopped) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
      }
      if (this.stopped) break;
      try {
        const { command } = await this.api.nextCommand(this.config.pollWaitMs, this.stopping.signal);
        failures = 0;
        this.notifyReady();
        if (command) this.dispatch(command);
      } catch (error) {
        if (this.stopped) break;
        if (error instanceof RevokedError) {
          this.enterRevoked(error);
          continue;
        }
        const waitMs = backoffMs(++failures);
        this.log.warn('could not ask the server for commands; trying again', { err: error, retryInMs: waitMs });
        await pause(waitMs, this.stopping.signal);
      }
    }
  }

  private dispatch(command: AgentCommand): void {
    const work = command.kind === 'task' ? this.runTask(command) : this.runRead(command);
    const tracked: Promise<void> = work
      .catch((error: unknown) => {
        if (error instanceof RevokedError) this.enterRevoked(error);
        else this.log.error('a command failed', { kind: command.kind, err: error });
      })
      .finally(() => {
        this.running.delete(tracked);
        this.slotFreed?.();
      });
    this.running.add(tracked);
  }

  private async runTask(command: TaskCommand): Promise<void> {
    const attempt = new TaskAttempt(command, {
      api: this.api,
      journal: this.journal,
      host: this.host,
      log: this.log,
      giveUp: this.giveUp.signal,
    });
    this.attempts.add(attempt);
    // The claim is kept while the task waits for another task on its unit, too.
    attempt.startLease();
    try {
      await this.oneAtATime(command.spec.unit ?? '(host)', async () => {
        // Not started before the shutdown: the server hands it out again once its lease lapses.
        if (this.stopped) attempt.abandon('the agent is shutting down');
        else await attempt.carryOut();
      });
    } finally {
      attempt.stopLease();
      this.attempts.delete(attempt);
    }
  }

  private async runRead(command: ReadCommand): Promise<void> {
    const results = await carryOutRead(this.host, command);
    for (let tries = 1; ; tries++) {
      try {
        await this.api.readResults(command.requestId, results);
        return;
      } catch (error) {
        if (error instanceof RevokedError || tries >= READ_POST_TRIES) throw error;
        await pause(backoffMs(tries), this.giveUp.signal);
      }
    }
  }

  /** Runs `work` after every earlier work on the same unit ended. */
  private oneAtATime(unit: string, work: () => Promise<void>): Promise<void> {
    const previous = this.unitQueues.get(unit) ?? Promise.resolve();
    const current = previous.then(work);
    const settled = current.then(
      () => undefined,
      () => undefined,
    );
    this.unitQueues.set(unit, settled);
    void settled.then(() => {
      if (this.unitQueues.get(unit) === settled) this.unitQueues.delete(unit);
    });
    return current;
  }

  /** The server revoked this agent: every attempt stops calling it; polling waits until a session is granted again. */
  private enterRevoked(error: RevokedError): void {
    if (this.revoked) return;
    this.log.error('THIS AGENT WAS REVOKED by the server: all work stopped; asking again every 5 minutes', {
      err: error,
    });
    for (const attempt of this.attempts) attempt.abandon('the agent was revoked');
    this.notifyReady('revoked by the server');
    this.revoked = this.whileRevoked().finally(() => {
      this.revoked = null;
    });
  }

  /**
   * Signs with `key`, unless a key rotation stopped after the server accepted the new key but before
   * it replaced the old one on disk: then the server refuses the old key and the staged one is it.
   */
  private async useKey(agentId: string, key: AgentKey): Promise<void> {
    this.api.setIdentity(agentId, key);
    const staged = await AgentKey.loadStaged(this.config.stateDir);
    if (!staged) return;
    try {
      await this.api.openSession();
      this.log.warn('a key rotation did not finish: the server still knows the current key; run rotate-key again');
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      this.api.setIdentity(agentId, staged);
      await this.api.openSession();
      await AgentKey.promoteStaged(this.config.stateDir);
      this.log.warn('finished a key rotation that stopped half-way: the staged key is this agent’s key now');
    }
  }

  private async whileRevoked(): Promise<void> {
    for (;;) {
      await pause(REVOKED_RETRY_MS, this.stopping.signal);
      if (this.stopped) return;
      try {
        await this.api.openSession();
        this.log.warn('the server accepts this agent again; resuming');
        return;
      } catch (error) {
        if (error instanceof RevokedError) this.log.error('THIS AGENT IS STILL REVOKED', { err: error });
        else this.log.warn('could not ask the server whether this agent is still revoked', { err: error });
      }
    }
  }

  /** Under systemd (Type=notify): ready once the server answered (or revoked it: the agent is up, not working). */
  private notifyReady(status?: string): void {
    if (this.notifiedReady || process.env.NOTIFY_SOCKET === undefined) return;
    this.notifiedReady = true;
    const argv = ['--ready', ...(status ? [`--status=${status}`] : [])];
    run('systemd-notify', argv, { timeout: 5_000 }).catch((error: unknown) =>
      this.log.warn('systemd-notify --ready failed', { err: error }),
    );
  }

  /** Waits for running commands up to the grace period, then lets go of what is left. */
  private async drain(): Promise<void> {
    if (this.running.size === 0) return;
    this.log.info('waiting for running commands', { running: this.running.size });
    const grace = new AbortController();
    const timer = setTimeout(() => grace.abort(), SHUTDOWN_GRACE_MS);
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise((resolve) => grace.signal.addEventListener('abort', resolve)),
    ]);
    clearTimeout(timer);
    if (this.running.size > 0) {
      this.log.warn(
        'commands still running after the grace period; exiting (the journal answers their next attempts)',
        {
          running: this.running.size,
        },
      );
      this.giveUp.abort();
      for (const attempt of this.attempts) attempt.abandon('the agent is shutting down');
    }
  }
}
