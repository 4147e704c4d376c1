import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';

/**
 * The layering check CI runs (scripts/check-layers.mjs with .dependency-cruiser.cjs) on small trees
 * of files: it must pass a tree that keeps the layers and fail, naming the rule, on each import it
 * exists to forbid. The real tree is checked by the suite's `layers` step.
 */
const REPOSITORY = path.resolve(__dirname, '..', '..', '..');
const CHECK = path.join(REPOSITORY, 'scripts', 'check-layers.mjs');

let tree: string | undefined;
afterEach(async () => {
  if (tree) await rm(tree, { recursive: true, force: true });
  tree = undefined;
});

/** Writes `files` (path → content) into a fresh tree and runs the check on it. */
async function check(files: Record<string, string>): Promise<{ status: number | null; output: string }> {
  tree = await mkdtemp(path.join(tmpdir(), 'drover-layers-'));
  await writeFile(path.join(tree, 'tsconfig.base.json'), JSON.stringify({ compilerOptions: { module: 'commonjs' } }));
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tree, file)), { recursive: true });
    await writeFile(path.join(tree, file), content);
  }
  const run = spawnSync(process.execPath, [CHECK, '--root', tree], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const KEEPS_THE_LAYERS = {
  'packages/protocol/src/verbs.ts': "export const VERBS = ['restart'];\n",
  'src/common/names.ts': "import { VERBS } from '../../packages/protocol/src/verbs';\nexport const first = VERBS[0];\n",
  'src/hosts/hosts.service.ts': "import { first } from '../common/names';\nexport const verb = first;\n",
  'src/rollouts/runner.ts': "import { verb } from '../hosts/hosts.service';\nexport const again = verb;\n",
  'src/jobs/processor.ts': "import { again } from '../rollouts/runner';\nexport const job = again;\n",
};

describe('the layering check', () => {
  it('passes a tree that keeps the layers', async () => {
    const { status, output } = await check(KEEPS_THE_LAYERS);
    assert.equal(status, 0, output);
    assert.match(output, /layers hold: 5 modules, 5 folders, no forbidden import, no folder cycle/);
  });

  it('fails when infrastructure imports a domain module, naming the rule and the import', async () => {
    const { status, output } = await check({
      ...KEEPS_THE_LAYERS,
      'src/infra/queue/processor.ts': "import { again } from '../../rollouts/runner';\nexport const job = again;\n",
    });
    assert.equal(status, 1, output);
    assert.match(output, /foundations-import-no-domain: src\/infra\/queue\/processor\.ts → src\/rollouts\/runner\.ts/);
  });

  it('fails on a cycle between folders even when no file imports itself', async () => {
    const { status, output } = await check({
      ...KEEPS_THE_LAYERS,
      'src/hosts/labels.ts': "import { again } from '../rollouts/runner';\nexport const label = again;\n",
    });
    assert.equal(status, 1, output);
    assert.match(output, /folder-cycle: src\/hosts, src\/rollouts import each other/);
    assert.doesNotMatch(output, /no-circular/, 'no file is in a cycle of files here');
  });

  it('fails when the protocol imports anything but zod, or the dashboard reaches past the protocol and client', async () => {
    const { status, output } = await check({
      ...KEEPS_THE_LAYERS,
      'packages/protocol/src/clock.ts': "import { hrtime } from 'node:process';\nexport const now = hrtime;\n",
      'ui/src/bounds.ts': "import { verb } from '../../src/hosts/hosts.service';\nexport const shown = verb;\n",
      'src/client/index.ts': 'export const client = 1;\n',
      'ui/src/api.ts': "import { client } from '../../src/client/index';\nexport const api = client;\n",
    });
    assert.equal(status, 1, output);
    assert.match(output, /protocol-is-zod-only: packages\/protocol\/src\/clock\.ts → (node:)?process/);
    assert.match(
      output,
      /dashboard-uses-protocol-and-client-only: ui\/src\/bounds\.ts → src\/hosts\/hosts\.service\.ts/,
    );
    assert.doesNotMatch(output, /ui\/src\/api\.ts/, 'the generated client is allowed');
  });

  it('fails when the agent imports server code; the systemd package and the client are its to use', async () => {
    const { status, output } = await check({
      ...KEEPS_THE_LAYERS,
      'src/client/index.ts': 'export const client = 1;\n',
      'packages/systemd/src/index.ts': 'export const carryOut = 1;\n',
      'agents/src/task.ts':
        "import { carryOut } from '../../packages/systemd/src/index';\nimport { client } from '../../src/client/index';\nexport const task = [carryOut, client];\n",
      'agents/src/shortcut.ts':
        "import { verb } from '../../src/hosts/hosts.service';\nexport const shortcut = verb;\n",
    });
    assert.equal(status, 1, output);
    assert.match(
      output,
      /agent-uses-protocol-systemd-and-client-only: agents\/src\/shortcut\.ts → src\/hosts\/hosts\.service\.ts/,
    );
    assert.doesNotMatch(output, /agents\/src\/task\.ts/, 'the systemd package and the generated client are allowed');
  });

  it('fails when the systemd package imports application code', async () => {
    const { status, output } = await check({
      ...KEEPS_THE_LAYERS,
      'packages/systemd/src/commands.ts':
        "import { verb } from '../../../src/hosts/hosts.service';\nexport const argv = [verb];\n",
    });
    assert.equal(status, 1, output);
    assert.match(
      output,
      /packages-import-no-application: packages\/systemd\/src\/commands\.ts → src\/hosts\/hosts\.service\.ts/,
    );
    assert.match(output, /systemd-imports-protocol-and-node-only: packages\/systemd\/src\/commands\.ts/);
  });
});
