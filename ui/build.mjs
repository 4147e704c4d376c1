// Builds the web dashboard into dist/ui: one JS bundle (esbuild), one stylesheet, index.html.
// The API serves these files at /ui (src/ui/dashboard-static.ts).
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '..', 'dist', 'ui');
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: [path.join(here, 'src', 'main.tsx')],
  outfile: path.join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  tsconfig: path.join(here, 'tsconfig.json'),
  // The workspace packages' TypeScript sources (package.json "exports"), so unused code is shaken out.
  conditions: ['drover-source'],
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
await copyFile(path.join(here, 'index.html'), path.join(out, 'index.html'));
await copyFile(path.join(here, 'app.css'), path.join(out, 'app.css'));
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
process.stdout.write(
  `dashboard built in ${path.relative(process.cwd(), out)} (${Math.round(bytes / 1024)} KiB of JS)\n`,
);
