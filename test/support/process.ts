import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stdout so far, as JSON log lines where they parse. */
  lines(): string[];
  waitForLine(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Starts a node entrypoint of the build as a real child process and follows its output. */
export function startNodeProcess(script: string, env: Record<string, string>, args: string[] = []): RunningProcess {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let partial = '';
  const collect = (chunk: Buffer) => {
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    output.push(...parts);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

  return {
    child,
    lines: () => [...output],
    // A bound for a process to get going, not a claim about its speed: generous, because a node
    // process starting on a 2-core machine shared with other test runs can take tens of seconds.
    waitForLine: async (predicate, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const line = output.find(predicate);
        if (line !== undefined) return line;
        if (child.exitCode !== null) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`no matching output line within ${timeoutMs} ms; output:\n${output.join('\n')}`);
    },
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      const started = Date.now();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const [code, exitSignal] = await exited;
      clearTimeout(timer);
      return { code, signal: exitSignal, ms: Date.now() - started };
    },
  };
}
