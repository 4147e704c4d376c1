import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandTimeoutError, LocalHost } from './local-host';

const host = new LocalHost({ name: 'spec-host', killGraceMs: 200 });
const node = process.execPath;

describe('LocalHost.run', () => {
  it('runs the argv itself, never through a shell', async () => {
    const result = await host.run(['printf', '%s|%s', '$(id -u); *', "it's"], { timeoutMs: 5_000 });
    assert.deepEqual(result, { exitCode: 0, stdout: "$(id -u); *|it's", stderr: '' });
  });

  it('returns a non-zero exit status as a result, with stderr', async () => {
    const result = await host.run([node, '-e', 'console.error("bad"); process.exit(3)'], { timeoutMs: 5_000 });
    assert.equal(result.exitCode, 3);
    assert.equal(result.stderr, 'bad\n');
  });

  it('kills a command past its time and fails', async () => {
    const started = Date.now();
    await assert.rejects(
      host.run([node, '-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { timeoutMs: 300 }),
      (error: unknown) => error instanceof CommandTimeoutError && error.timeoutMs === 300,
    );
    // TERM was ignored: KILL after the grace.
    assert.ok(Date.now() - started < 3_000);
  });

  it('takes the answer the agent gives itself, streamed as output is, and runs the argv only without one', async () => {
    const asked: [readonly string[], number][] = [];
    const answering = new LocalHost({
      answer: (argv, timeoutMs) => {
        asked.push([argv, timeoutMs]);
        return Promise.resolve(argv[0] === 'answered' ? { exitCode: 1, stdout: 'out\n', stderr: 'warning\n' } : null);
      },
    });
    const streamed: string[] = [];
    const answer = await answering.run(['answered'], { timeoutMs: 4_000, onData: (text) => streamed.push(text) });
    assert.deepEqual(answer, { exitCode: 1, stdout: 'out\n', stderr: 'warning\n' });
    assert.deepEqual(streamed, ['out\n', 'warning\n']);
    assert.deepEqual((await answering.run(['printf', 'ran'], { timeoutMs: 5_000 })).stdout, 'ran');
    assert.deepEqual(asked, [
      [['answered'], 4_000],
      [['printf', 'ran'], 5_000],
    ]);
  });

  it('fails when the command cannot run', async () => {
    await assert.rejects(host.run(['/nonexistent/drover-command'], { timeoutMs: 1_000 }), /could not run/);
  });

  it('keeps only the tail of long output, and streams all of it', async () => {
    const small = new LocalHost({ maxStreamChars: 1_000 });
    let streamed = 0;
    const result = await small.run([node, '-e', 'process.stdout.write("x".repeat(200000) + "END")'], {
      timeoutMs: 5_000,
      onData: (chunk) => (streamed += chunk.length),
    });
    assert.equal(result.stdout.length, 1_000);
    assert.ok(result.stdout.endsWith('END'));
    assert.equal(streamed, 200_003);
  });
});

describe('LocalHost.runSequence', () => {
  const steps = [
    ['echo', 'one'],
    ['echo', 'two'],
    ['echo', 'three'],
  ];

  it('runs every step without a pause', async () => {
    const ran = await host.runSequence(steps, { timeoutMs: 5_000 });
    assert.deepEqual(
      ran.steps.map((step) => step.stdout),
      ['one\n', 'two\n', 'three\n'],
    );
    assert.equal(ran.proceeded, undefined);
  });

  it('runs the rest after a yes, with the results before the pause', async () => {
    let seen: string[] = [];
    const ran = await host.runSequence(steps, {
      timeoutMs: 5_000,
      pause: {
        after: 1,
        proceed: (done) => {
          seen = done.map((step) => step.stdout);
          return Promise.resolve(true);
        },
      },
    });
    assert.deepEqual(seen, ['one\n']);
    assert.equal(ran.proceeded, true);
    assert.equal(ran.steps.length, 3);
  });

  it('stops at the pause after a no', async () => {
    const ran = await host.runSequence(steps, {
      timeoutMs: 5_000,
      pause: { after: 2, proceed: () => Promise.resolve(false) },
    });
    assert.equal(ran.proceeded, false);
    assert.deepEqual(
      ran.steps.map((step) => step.stdout),
      ['one\n', 'two\n'],
    );
  });

  it('passes an error of proceed on and runs nothing more', async () => {
    await assert.rejects(
      host.runSequence(steps, {
        timeoutMs: 5_000,
        pause: { after: 1, proceed: () => Promise.reject(new Error('no')) },
      }),
      /no/,
    );
  });

  it('does not act on a go later than the go window', async () => {
    const ran = await host.runSequence([['true'], ['touch', '/nonexistent-dir/should-not-run']], {
      timeoutMs: 200,
      pause: { after: 1, proceed: () => new Promise((resolve) => setTimeout(() => resolve(true), 400)) },
    });
    assert.equal(ran.proceeded, false);
    assert.equal(ran.steps.length, 1);
  });

  it('gives an optional step that cannot run a result instead of failing', async () => {
    const ran = await host.runSequence([['echo', 'a'], ['/nonexistent/drover-step'], ['echo', 'b']], {
      timeoutMs: 5_000,
      optional: [1],
    });
    assert.equal(ran.steps[1]?.exitCode, null);
    assert.match(ran.steps[1]?.stderr ?? '', /could not run/);
    assert.equal(ran.steps[2]?.stdout, 'b\n');
  });

  it('fails on a step that cannot run and is not optional', async () => {
    await assert.rejects(host.runSequence([['echo', 'a'], ['/nonexistent/drover-step']], { timeoutMs: 5_000 }));
  });

  it('gives the host a go window of the timeout', () => {
    assert.equal(host.goWindowMs(30_000), 30_000);
    assert.equal(host.identified, true);
  });
});
