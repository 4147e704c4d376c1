// Bundles the agent into one file, dist/agent/drover-agent.js (node ≥ 20, no node_modules on the
// host), with its packaging (the systemd unit, the install script) next to it. The API serves them.
import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '..', 'dist', 'agent');
const bundle = path.join(out, 'drover-agent.js');
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: [path.join(here, 'src', 'main.ts')],
  outfile: bundle,
  bundle: true,
  minify: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  tsconfig: path.join(here, 'tsconfig.json'),
  // The workspace packages' TypeScript sources (package.json "exports"), so unused code is shaken out.
  conditions: ['drover-source'],
  banner: { js: '#!/usr/bin/env node' },
  // The D-Bus library's X11 session-bus address lookup: never used (the agent talks to the system bus).
  external: ['x11'],
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
await chmod(bundle, 0o755);
for (const file of await readdir(path.join(here, 'packaging'))) {
  await copyFile(path.join(here, 'packaging', file), path.join(out, file));
}
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
process.stdout.write(`agent built in ${path.relative(process.cwd(), bundle)} (${Math.round(bytes / 1024)} KiB)\n`);
