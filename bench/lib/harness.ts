/**
 * What every benchmark needs around its measurements: progress lines, statistics, child processes
 * (run, start, stop, CPU and memory from /proc), cleanups that run on every way out, and the
 * Markdown report written through prettier. The fleet and drover itself are in ./fleet and ./drover.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { format, resolveConfig } from 'prettier';

/** The repository (benchmarks run from dist/bench/..., compiled by tsc). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const START_TIMEOUT_MS = 60_000;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

let benchName = 'bench';

/** Progress goes to stderr, as `[bench:NAME] message`; the Markdown report goes to stdout. */
export function progress(message: string): void {
  process.stderr.write(`[bench:${benchName}] ${message}\n`);
}

export function fail(message: string): never {
  throw new Error(message);
}

export const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
export const secs = (value: number): string => value.toFixed(2);
export const mib = (bytes: number): string => `${(bytes / 1_048_576).toFixed(0)} MiB`;

export interface Stats {
  median: number;
  min: number;
  max: number;
}

export function stats(values: number[]): Stats {
  if (values.length === 0) throw new Error('no values to summarise');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** A whole number option value of at least 1, or an error naming the option. */
export function positiveInteger(option: string, value: string | undefined): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) fail(`${option} needs a positive whole number`);
  return parsed;
}

/** A comma-separated list of whole numbers of at least 1, without repeats, smallest first. */
export function positiveIntegers(option: string, value: string | undefined): number[] {
  return [...new Set((value ?? '').split(',').map((item) => positiveInteger(option, item)))].sort((a, b) => a - b);
}

/** A comma-separated list of some of `parts` (a benchmark's --parts), or an error listing them. */
export function partList<Part extends string>(parts: readonly Part[], value: string | undefined): Part[] {
  const names = (value ?? '').split(',');
  if (names.some((name) => !(parts as readonly string[]).includes(name))) fail(`--parts takes ${parts.join(',')}`);
  return names as Part[];
}

// ---------------------------------------------------------------------------------------------
// processes

/** Runs a command to its end, its output appended to logFile (or on our stderr); resolves its exit code. */
export async function run(
  command: string,
  args: string[],
  logFile?: string,
  env = process.env,
): Promise<number | null> {
  const log = logFile === undefined ? null : openSync(logFile, 'a');
  try {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', log ?? 2, log ?? 2] });
    const [code] = (await once(child, 'exit')) as [number | null];
    return code;
  } finally {
    if (log !== null) closeSync(log);
  }
}

export async function runOrFail(command: string, args: string[], logFile?: string, env = process.env): Promise<void> {
  const code = await run(command, args, logFile, env);
  if (code !== 0)
    throw new Error(`${command} ${args.join(' ')} exited with ${code}${logFile ? `: see ${logFile}` : ''}`);
}

/** Starts a script of the repository with this Node.js, its output appended to logFile. */
export function startNode(
  script: string,
  env: NodeJS.ProcessEnv,
  logFile: string,
  profileDir: string | null,
): ChildProcess {
  const log = openSync(logFile, 'a');
  const profile = profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  try {
    return spawn(process.execPath, [...profile, path.join(ROOT, script)], {
      cwd: ROOT,
      env,
      stdio: ['ignore', log, log],
    });
  } finally {
    closeSync(log);
  }
}

/** SIGTERM (a graceful shutdown), SIGKILL if it has not exited after 15 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Polls `ready` until it is true; fails when a watched process exits first, or after START_TIMEOUT_MS. */
export async function waitUntil(what: string, ready: () => Promise<boolean>, watched: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await ready())) {
    const exited = watched.find((child) => child.exitCode !== null || child.signalCode !== null);
    if (exited) throw new Error(`${what}: a process exited (${exited.spawnargs.join(' ')})`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${START_TIMEOUT_MS / 1000} s`);
    await sleep(100);
  }
}

/**
 * CPU seconds from /proc/PID/stat: the process's own (utime + stime), or that of its children it
 * has waited for (cutime + cstime).
 */
export function cpuSeconds(pid: number | 'self', of: 'own' | 'children' = 'own'): number {
  return cpuSecondsOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8'), of);
}

/** CPU seconds from the text of a /proc/PID/stat (read here, or inside a host: the same kernel's clock ticks). */
export function cpuSecondsOfStat(stat: string, of: 'own' | 'children' = 'own'): number {
  // The command name may contain spaces; after it, [0] is field 3, so utime (field 14) is [11].
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const first = of === 'own' ? 11 : 13;
  return (Number(fields[first]) + Number(fields[first + 1])) / CLK_TCK;
}

/** VmRSS, the resident memory now, in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

export function peakRssBytes(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

export function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
      .once('connect', () => {
        socket.destroy();
        resolve(true);
      })
      .once('error', () => resolve(false));
  });
}

/** Cleanups run once, newest first, on every way out (the end, an error, SIGINT or SIGTERM). */
export class Teardown {
  private readonly steps: { what: string; step: () => Promise<void> | void }[] = [];
  private done: Promise<void> | null = null;

  add(what: string, step: () => Promise<void> | void): void {
    this.steps.push({ what, step });
  }

  run(): Promise<void> {
    this.done ??= (async () => {
      // pop, not a copy: a step added while an earlier one runs (a signal mid-start) runs too.
      for (let next = this.steps.pop(); next; next = this.steps.pop()) {
        try {
          await next.step();
        } catch (error) {
          progress(`cleanup: ${next.what} failed: ${errorText(error)}`);
        }
      }
    })();
    return this.done;
  }
}

/**
 * Runs a benchmark named `name` (the prefix of its progress lines) with a Teardown that runs on
 * every way out, SIGINT and SIGTERM included; a failure is printed and sets the exit code 1.
 */
export function runBenchmark(name: string, benchmark: (teardown: Teardown) => Promise<void>): void {
  benchName = name;
  const teardown = new Teardown();
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      progress(`${signal}: cleaning up`);
      void teardown.run().finally(() => process.exit(code));
    });
  }
  // Through a promise: an error thrown before the benchmark's first await (a bad option) is handled too.
  Promise.resolve()
    .then(() => benchmark(teardown))
    .finally(() => teardown.run())
    .catch((error: unknown) => {
      progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exitCode = 1;
    });
}

/** Formats the Markdown report as the repository's prettier does, prints it and writes it to `out`. */
export async function writeReport(markdown: string, out: string): Promise<void> {
  const formatted = await format(markdown, { ...(await resolveConfig(out)), parser: 'markdown' });
  process.stdout.write(formatted);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, formatted);
  progress(`report written to ${out}`);
}

/** One timed run of a contender: its wall time and CPU seconds; round 0 is the warm-up. */
export interface TimedRun<Contender extends string> {
  contender: Contender;
  round: number;
  seconds: number;
  cpuSeconds: number;
}

/**
 * Each contender's wall-time statistics over its timed rounds (the warm-up left out), and the
 * markdown table every benchmark shows them in, the warm-up beside them.
 */
export function wallTimes<Contender extends string>(
  contenders: readonly Contender[],
  titles: Record<Contender, string>,
  runs: readonly TimedRun<Contender>[],
): { wall: Record<Contender, Stats>; table: string[] } {
  const timed = (contender: Contender) => runs.filter((run) => run.round > 0 && run.contender === contender);
  const warmup = (contender: Contender) => runs.find((run) => run.round === 0 && run.contender === contender)!;
  const wall = Object.fromEntries(
    contenders.map((contender) => [contender, stats(timed(contender).map((run) => run.seconds))]),
  ) as Record<Contender, Stats>;
  const table = [
    '| contender | median s | min s | max s | warm-up s | CPU s per run (median) |',
    '|---|--:|--:|--:|--:|--:|',
    ...contenders.map((c) => {
      const cpu = stats(timed(c).map((run) => run.cpuSeconds)).median;
      return `| ${titles[c]} | ${secs(wall[c].median)} | ${secs(wall[c].min)} | ${secs(wall[c].max)} | ${secs(warmup(c).seconds)} | ${secs(cpu)} |`;
    }),
  ];
  return { wall, table };
}
