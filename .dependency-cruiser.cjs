/**
 * drover's layers, checked in CI by scripts/check-layers.mjs (which also refuses cycles between
 * folders). From the bottom up:
 *   packages/protocol  what a host is asked and reports (zod only: the agent and the browser use it)
 *   packages/systemd   systemd on a host, whatever carries the commands (protocol + node built-ins)
 *   src/config, src/generated, src/common, src/infra   foundations: no domain knowledge
 *   src/<domain>       hosts, units, operations, rollouts, tokens, audit, access, probes, health, ui
 *   src/jobs, src/openapi, src/cli, src/*.ts           what puts the domains together (entrypoints)
 *   ui/, agents/       the dashboard and the per-host agent: the protocol and the generated client only
 * Tests (*.spec.ts, test/) may reach across layers; production code may not reach into tests.
 */
const FOUNDATIONS = '^src/(config|generated|common|infra)/';
const DOMAINS = '^src/(access|audit|health|hosts|operations|probes|rollouts|tokens|ui|units)/';
const COMPOSITION = '^src/(jobs|openapi|cli)/|^src/[^/]+[.]ts$';
const SPEC = '[.]spec[.]ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A file must not import itself through others: split the shared part out.',
      from: { path: '^(src|packages)/' },
      to: { circular: true },
    },
    {
      name: 'foundations-import-no-domain',
      severity: 'error',
      comment:
        'config, common and infra serve every domain and know none: invert with a contract in common ' +
        '(see common/errors/refusal-recorder.ts) or move the code into the domain.',
      from: { path: FOUNDATIONS, pathNot: SPEC },
      to: { path: `${DOMAINS}|${COMPOSITION}` },
    },
    {
      name: 'domains-import-no-composition',
      severity: 'error',
      comment: 'Entrypoints, the job processor and the CLI put domains together; no domain depends on them.',
      from: { path: DOMAINS, pathNot: SPEC },
      to: { path: COMPOSITION },
    },
    {
      name: 'packages-import-no-application',
      severity: 'error',
      comment: 'packages/* are used by the control plane, the agent and the dashboard: they import none of them.',
      from: { path: '^packages/' },
      to: { path: '^(src|test|bench|ui|agents)/' },
    },
    {
      name: 'protocol-is-zod-only',
      severity: 'error',
      comment: 'The protocol runs in node, the agent and the browser: zod and its own files, nothing else.',
      from: { path: '^packages/protocol/src/', pathNot: SPEC },
      to: { pathNot: '^(packages/protocol/|node_modules/zod/)' },
    },
    {
      name: 'systemd-imports-protocol-and-node-only',
      severity: 'error',
      comment: 'The systemd package runs under the SSH worker and the agent alike: no NestJS, Prisma or ssh2.',
      from: { path: '^packages/systemd/src/', pathNot: SPEC },
      to: { pathNot: '^packages/(systemd|protocol)/', dependencyTypesNot: ['core'] },
    },
    {
      name: 'dashboard-uses-protocol-and-client-only',
      severity: 'error',
      comment: 'ui/ talks to the control plane through the API: the protocol and src/client only.',
      from: { path: '^ui/' },
      to: { path: '^(src|test|bench|packages/systemd|agents)/', pathNot: '^src/client/' },
    },
    {
      name: 'agent-uses-protocol-systemd-and-client-only',
      severity: 'error',
      comment:
        'agents/ runs on hosts: it carries out tasks with packages/systemd (the code the SSH worker runs) and talks to the control plane through the API (the protocol, src/client), never the server code.',
      from: { path: '^agents/' },
      to: { path: '^(src|test|bench|ui)/', pathNot: '^src/client/' },
    },
    {
      name: 'client-is-generated-only',
      severity: 'error',
      comment: 'src/client wraps the generated OpenAPI types and is shipped to the dashboard and the agent.',
      from: { path: '^src/client/' },
      to: { path: '^(src|packages)/', pathNot: '^src/client/' },
    },
    {
      name: 'production-code-imports-no-tests',
      severity: 'error',
      from: { path: '^(src|packages)/', pathNot: `${SPEC}|/fixtures/` },
      to: { path: `^test/|${SPEC}|/fixtures/` },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/|^src/generated/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['drover-source', 'require', 'node', 'default'],
      mainFields: ['main', 'types'],
      extensions: ['.ts', '.tsx', '.js', '.d.ts', '.json'],
    },
  },
};
