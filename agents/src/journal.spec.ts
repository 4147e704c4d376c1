import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { TaskCommand, UnitActionOutcome } from '@drover/protocol';
import type { Host } from '@drover/systemd';
import type { AgentApi } from './api';
import { replayedOutcome, TaskJournal } from './journal';
import { Logger } from './log';
import { TaskAttempt } from './task-attempt';

const TASK = '1d3c5a1e-7a0b-4c8e-9a51-3f2b6d7e8c90';
const OUTCOME: UnitActionOutcome = {
  result: 'succeeded',
  reason: 'active in a new run',
  exitCode: 0,
  before: null,
  after: null,
  output: null,
  verdict: null,
  daemonReloaded: false,
};

describe('TaskJournal', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'drover-agent-journal-'));
  after(() => rm(dir, { recursive: true, force: true }));

  it('remembers results across restarts', async () => {
    const file = path.join(dir, 'replay.jsonl');
    const journal = await TaskJournal.open(file);
    await journal.append({ taskId: TASK, attempt: 1, event: 'cleared', at: new Date().toISOString() });
    assert.equal(journal.resultOf(TASK), undefined);
    await journal.append({ taskId: TASK, attempt: 1, event: 'result', at: new Date().toISOString(), outcome: OUTCOME });
    await journal.close();

    const reopened = await TaskJournal.open(file);
    assert.deepEqual(reopened.resultOf(TASK), { attempt: 1, outcome: OUTCOME });
    await reopened.close();
    assert.equal((await readFile(file, 'utf8')).trim().split('\n').length, 2);
  });

  it('keeps its last entries when opened, and skips a line a crash cut', async () => {
    const file = path.join(dir, 'compact.jsonl');
    const journal = await TaskJournal.open(file);
    for (let attempt = 1; attempt <= 5; attempt++) {
      await journal.append({ taskId: `task-${attempt}`, attempt, event: 'cleared', at: new Date().toISOString() });
    }
    await journal.close();
    await appendFile(file, '{"taskId":"cut');
    const compacted = await TaskJournal.open(file, 3);
    assert.equal(compacted.skippedLines, 1);
    await compacted.close();
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    assert.deepEqual(
      lines.map((line) => (JSON.parse(line) as { taskId: string }).taskId),
      ['task-3', 'task-4', 'task-5'],
    );
  });

  it('says which attempt carried a task out', () => {
    assert.equal(
      replayedOutcome({ attempt: 1, outcome: OUTCOME }).reason,
      'already carried out by attempt 1: active in a new run',
    );
  });

  it('makes a later attempt report the recorded outcome instead of acting again', async () => {
    const journal = await TaskJournal.open(path.join(dir, 'refuse.jsonl'));
    await journal.append({ taskId: TASK, attempt: 1, event: 'result', at: new Date().toISOString(), outcome: OUTCOME });
    const posted: { attempt: number; outcome: UnitActionOutcome }[] = [];
    const api = {
      result: (_taskId: string, attempt: number, outcome: UnitActionOutcome) => {
        posted.push({ attempt, outcome });
        return Promise.resolve(true);
      },
    } as unknown as AgentApi;
    const refuse = () => Promise.reject(new Error('the host must not be used'));
    const host: Host = {
      name: 'h',
      identified: true,
      fixedCommandLines: false,
      run: refuse,
      runSequence: refuse,
      goWindowMs: (ms) => ms,
    };
    const command: TaskCommand = {
      kind: 'task',
      taskId: TASK,
      attempt: 2,
      spec: { verb: 'restart', unit: 'nginx.service', timeoutMs: 1_000, settleTimeoutMs: 0, daemonReload: 'refuse' },
      earlier: { before: null, clearedMsAgo: null },
      leaseMs: 30_000,
    };
    const lines: string[] = [];
    const log = new Logger('info', { out: (line) => lines.push(line), err: (line) => lines.push(line) });
    await new TaskAttempt(command, { api, journal, host, log, giveUp: new AbortController().signal }).carryOut();
    await journal.close();
    assert.deepEqual(posted, [
      { attempt: 2, outcome: { ...OUTCOME, reason: `already carried out by attempt 1: ${OUTCOME.reason}` } },
    ]);
    assert.ok(lines.some((line) => line.includes('carried out already')));
  });
});
