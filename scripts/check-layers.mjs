// The layering check CI runs: dependency-cruiser with .dependency-cruiser.cjs (which layer may import
// which), then the same graph folded into folders (src/<module>, packages/<name>, ui, agents), which
// must have no cycle. Prints each violation with the imports that make it; exits 1 if there is any.
//
//   node scripts/check-layers.mjs [--root DIR]   (DIR: the tree to check, default the repository)
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const repository = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rootFlag = process.argv.indexOf('--root');
const root = rootFlag === -1 ? repository : path.resolve(process.argv[rootFlag + 1] ?? '.');
const scanned = ['src', 'packages', 'ui/src', 'agents'].filter((dir) => existsSync(path.join(root, dir)));

let output;
try {
  output = execFileSync(
    path.join(repository, 'node_modules', '.bin', 'depcruise'),
    [...scanned, '--config', path.join(repository, '.dependency-cruiser.cjs'), '--output-type', 'json'],
    { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'] },
  );
} catch (error) {
  // depcruise exits non-zero when a rule is broken; its JSON report is still on stdout.
  if (typeof error.stdout !== 'string' || error.stdout === '') throw error;
  output = error.stdout;
}
const report = JSON.parse(output);
const problems = report.summary.violations.map(
  (violation) => `${violation.rule.name}: ${violation.from} → ${violation.to}`,
);

/** The folder a file belongs to in the layer picture, or null for what is outside it. */
function folderOf(file) {
  const parts = file.split('/');
  if (parts[0] === 'src') return parts.length > 2 ? `src/${parts[1]}` : 'src (entrypoints)';
  if (parts[0] === 'packages' && parts.length > 2) return `packages/${parts[1]}`;
  if (parts[0] === 'ui' || parts[0] === 'agents') return parts[0];
  return null;
}

// Folder edges, each with one import that makes it (tests may reach across layers: not counted).
const edges = new Map();
for (const module of report.modules) {
  const from = folderOf(module.source);
  if (from === null || /\.spec\.ts$/.test(module.source)) continue;
  for (const dependency of module.dependencies) {
    const to = folderOf(dependency.resolved);
    if (to === null || to === from) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    if (!edges.get(from).has(to)) edges.get(from).set(to, `${module.source} → ${dependency.resolved}`);
  }
}

// Tarjan's strongly connected components: every component of more than one folder is a cycle.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
function visit(folder) {
  index.set(folder, counter);
  low.set(folder, counter);
  counter += 1;
  stack.push(folder);
  onStack.add(folder);
  for (const next of edges.get(folder)?.keys() ?? []) {
    if (!index.has(next)) {
      visit(next);
      low.set(folder, Math.min(low.get(folder), low.get(next)));
    } else if (onStack.has(next)) {
      low.set(folder, Math.min(low.get(folder), index.get(next)));
    }
  }
  if (low.get(folder) !== index.get(folder)) return;
  const component = [];
  let member;
  do {
    member = stack.pop();
    onStack.delete(member);
    component.push(member);
  } while (member !== folder);
  if (component.length < 2) return;
  const inside = new Set(component);
  const links = [];
  for (const from of component) {
    for (const [to, example] of edges.get(from) ?? [])
      if (inside.has(to)) links.push(`    ${from} → ${to} (${example})`);
  }
  problems.push(`folder-cycle: ${component.sort().join(', ')} import each other:\n${links.sort().join('\n')}`);
}
for (const folder of edges.keys()) if (!index.has(folder)) visit(folder);

const folders = new Set([...edges.keys(), ...[...edges.values()].flatMap((targets) => [...targets.keys()])]);
if (problems.length > 0) {
  for (const problem of problems) process.stdout.write(`✗ ${problem}\n`);
  process.stdout.write(
    `${problems.length} layering violation(s); the layers are described in .dependency-cruiser.cjs\n`,
  );
  process.exit(1);
}
process.stdout.write(
  `layers hold: ${report.summary.totalCruised} modules, ${folders.size} folders, no forbidden import, no folder cycle\n`,
);
