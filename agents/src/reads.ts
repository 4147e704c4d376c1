import type { ReadCommand, ReadItem, ReadResult } from '@drover/protocol';
import { type Host, joinOutput, readDiagnostics, readUnit } from '@drover/systemd';

/** The protocol's bounds on a probe's output and an error's message. */
const MAX_PROBE_OUTPUT_CHARS = 4096;
const MAX_ERROR_CHARS = 2000;

async function readItem(host: Host, item: ReadItem, index: number, timeoutMs: number): Promise<ReadResult> {
  try {
    if (item.kind === 'unit') {
      return { kind: 'unit', unit: item.unit, snapshot: await readUnit(host, item.unit, timeoutMs) };
    }
    if (item.kind === 'diagnostics') {
      const read = await readDiagnostics(host, item.unit, { secondsAgo: item.secondsAgo }, timeoutMs);
      return { kind: 'diagnostics', unit: item.unit, ...read };
    }
    const ran = await host.run(item.argv, { timeoutMs: Math.min(item.timeoutMs, timeoutMs) });
    const output = joinOutput(ran.stdout, ran.stderr) ?? '';
    return {
      kind: 'probe',
      name: item.name,
      exitCode: ran.exitCode,
      output: output.length > MAX_PROBE_OUTPUT_CHARS ? `…${output.slice(-(MAX_PROBE_OUTPUT_CHARS - 1))}` : output,
    };
  } catch (error) {
    return { kind: 'error', item: index, message: (error as Error).message.slice(0, MAX_ERROR_CHARS) };
  }
}

/** What the server asked to read (a health gate), each item at once and within the command's time. */
export function carryOutRead(host: Host, command: ReadCommand): Promise<ReadResult[]> {
  return Promise.all(command.items.map((item, index) => readItem(host, item, index, command.timeoutMs)));
}
