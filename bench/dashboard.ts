/**
 * The web dashboard's goals (issue 16), measured on this machine with a real API, worker and fleet:
 *
 *   bundle      what /ui loads (dist/ui: index.html, app.js, app.css), gzip -9 and as the API serves it
 *   first paint first-contentful-paint of cold loads (a new browser context each) of /ui, of the fleet
 *               page signed in, and of a rollout's page while the rollout runs and after it finished,
 *               in Debian's Chromium driven by playwright-core
 *   events      a rolling restart of nginx.service on every host of the fleet, followed live by two
 *               pages (one opened as it starts, one joining halfway): the events each page shows must
 *               be the rows of rollout_events for that rollout, in order, none missing, none repeated
 *
 *   npm run bench:dashboard                            # build, boot 400 hosts, measure, tear down
 *   node dist/bench/dashboard.js --hosts 20 --out /tmp/dashboard.md
 *
 * Options: --hosts N (400), --loads N (cold loads per page, 7), --keep-fleet (reuse a fleet of N hosts
 * that is up and leave it up), --out FILE (bench/results/dashboard.md), --port N (8092), --database NAME
 * (drover_bench_dashboard, also the Redis key prefix), --inventory FILE (run on the hosts of this
 * inventory, up already: neither booted nor torn down). DROVER_FLEET_STATE and DROVER_FLEET_BOOT_PARALLEL
 * are fleet.sh's; DROVER_CHROMIUM names the browser (/usr/bin/chromium). Needs root (the fleet),
 * PostgreSQL and Redis on 127.0.0.1 (started when absent), and `npm run build:ui` done.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { call, Drover, ensureServices, finishedEvent, machine, Rollout, startDrover } from './lib/drover';
import { FleetHost, provideFleet } from './lib/fleet';
import {
  fail,
  positiveInteger,
  progress,
  ROOT,
  runBenchmark,
  Stats,
  stats,
  Teardown,
  writeReport,
} from './lib/harness';

const DIST_UI = path.join(ROOT, 'dist/ui');
const DEFAULT_OUT = path.join(ROOT, 'bench/results/dashboard.md');
const CHROMIUM = process.env.DROVER_CHROMIUM ?? '/usr/bin/chromium';
/** The goals of issue 16. */
const BUNDLE_GOAL_BYTES = 300_000;
const PAINT_GOAL_MS = 1_000;
/** How long a page may take to show the end of the rollout once drover wrote it. */
const FOLLOW_TIMEOUT_MS = 180_000;
const ROLLOUT_TIMEOUT_MS = 900_000;

/**
 * A rolling restart long enough to watch: one host, then a tenth of the fleet at a time, each
 * healthy for 1 s; one host in twenty may fail (on a busy machine a probe can time out) so that
 * the rollout goes through the whole fleet.
 */
function rolloutOf(hosts: number) {
  return {
    verb: 'restart',
    unit: 'nginx.service',
    selector: 'fleet=nspawn',
    batches: { sizes: [1, '10%'] },
    maxFailures: Math.max(1, Math.floor(hosts / 20)),
    healthGate: {
      minHealthyTimeMs: 1_000,
      probes: [{ type: 'http', port: 80, path: '/', expectStatus: 200, timeoutMs: 2_000 }],
    },
  };
}

interface Options {
  hosts: number;
  loads: number;
  keepFleet: boolean;
  out: string;
  port: number;
  database: string;
  /** Hosts that are up already (a fleet.sh inventory.json, or part of one): neither booted nor torn down. */
  inventory: string | null;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    hosts: 400,
    loads: 7,
    keepFleet: false,
    out: DEFAULT_OUT,
    port: 8092,
    database: 'drover_bench_dashboard',
    inventory: null,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--keep-fleet') options.keepFleet = true;
    else if (arg === '--out') options.out = path.resolve(argv[++i] ?? fail('--out needs a file'));
    else if (arg === '--database') options.database = argv[++i] ?? fail('--database needs a name');
    else if (arg === '--inventory') options.inventory = path.resolve(argv[++i] ?? fail('--inventory needs a file'));
    else if (arg === '--hosts' || arg === '--loads' || arg === '--port') {
      options[arg.slice(2) as 'hosts' | 'loads' | 'port'] = positiveInteger(arg, argv[++i]);
    } else fail(`unknown option ${arg}`);
  }
  if (options.hosts > 1_000) fail('--hosts must be at most 1000 (the most fleet.sh boots)');
  return options;
}

function countBy(values: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

const listCounts = (counts: Map<string, number>): string =>
  [...counts].map(([name, count]) => `${name} ${count}`).join(', ');
const kb = (bytes: number): string => `${(bytes / 1000).toFixed(1)} KB`;
const ms = (value: number): string => `${Math.round(value)}`;
const verdict = (met: boolean): string => (met ? '**met**' : '**not met**');

// ---------------------------------------------------------------------------------------------
// the bundle

interface BundleFile {
  name: string;
  bytes: number;
  gzip: number;
  brotli: number;
  /** What GET /ui/<name> sent: its Content-Encoding (or "none") and the bytes on the wire. */
  served: { encoding: string; bytes: number };
}

/** The body of GET url exactly as it came over the wire (no decompression), asking for gzip and brotli. */
function rawGet(url: string): Promise<{ encoding: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { 'accept-encoding': 'gzip, deflate, br' } }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () => resolve({ encoding: response.headers['content-encoding'] ?? 'none', bytes }));
      response.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

async function measureBundle(apiUrl: string): Promise<BundleFile[]> {
  const names = (await readdir(DIST_UI)).filter((name) => !name.endsWith('.map')).sort();
  if (!names.includes('app.js')) fail(`no ${DIST_UI}/app.js: run npm run build:ui`);
  return Promise.all(
    names.map(async (name) => {
      const body = await readFile(path.join(DIST_UI, name));
      return {
        name,
        bytes: body.length,
        gzip: gzipSync(body, { level: 9 }).length,
        brotli: brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }).length,
        served: await rawGet(`${apiUrl}/ui/${name === 'index.html' ? '' : name}`),
      };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// the browser

/** The few browser globals the page functions below read (this project compiles without the DOM lib). */
interface PageGlobals {
  sessionStorage: { setItem(key: string, value: string): void };
  document: { querySelectorAll(selector: string): ArrayLike<{ getAttribute(name: string): string | null }> };
  performance: { now(): number; getEntriesByName(name: string): { startTime: number }[] };
}

/** A fresh browser context (no cache, no storage), signed in with `token` unless it is null. */
async function coldContext(browser: Browser, token: string | null): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  if (token !== null) {
    // As if the user had signed in in this tab: the dashboard keeps the token in sessionStorage.
    await context.addInitScript((secret) => {
      try {
        (globalThis as unknown as PageGlobals).sessionStorage.setItem('drover.token', secret);
      } catch {
        // about:blank has no storage; the dashboard's origin has.
      }
    }, token);
  }
  return context;
}

interface Load {
  /** first-contentful-paint, ms after the navigation started. */
  fcp: number;
  /** When the page's content was complete (`ready`), ms after the navigation started. */
  ready: number;
}

/** A page's content is complete when at least `count` elements match `selector`. */
interface Ready {
  selector: string;
  count: number;
}

/** Waits until `ready` holds in the page; resolves the page's clock (ms since navigation) at that moment. */
async function readyAt(page: Page, ready: Ready, timeout = 60_000): Promise<number> {
  const handle = await page.waitForFunction(
    ({ selector, count }) =>
      (globalThis as unknown as PageGlobals).document.querySelectorAll(selector).length >= count
        ? (globalThis as unknown as PageGlobals).performance.now()
        : false,
    ready,
    { timeout, polling: 'raf' },
  );
  return (await handle.jsonValue()) as number;
}

/** One load of `url` in a cold context: its first contentful paint and when `ready` held. */
async function coldLoad(browser: Browser, url: string, token: string | null, ready: Ready): Promise<Load> {
  const context = await coldContext(browser, token);
  try {
    const page = await context.newPage();
    await page.goto(url);
    const at = await readyAt(page, ready);
    const fcp = await page.evaluate(
      () => (globalThis as unknown as PageGlobals).performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
    );
    if (fcp === undefined) throw new Error(`${url}: no first-contentful-paint entry`);
    return { fcp, ready: at };
  } finally {
    await context.close();
  }
}

async function coldLoads(
  browser: Browser,
  loads: number,
  url: string,
  token: string | null,
  ready: Ready,
): Promise<Load[]> {
  const results: Load[] = [];
  for (let i = 0; i < loads; i += 1) results.push(await coldLoad(browser, url, token, ready));
  return results;
}

/** A rollout's page that stays open, following the rollout live. */
interface Follower {
  context: BrowserContext;
  page: Page;
  /** When it was opened, ms after the rollout was created. */
  openedAfterMs: number;
}

async function openFollower(browser: Browser, drover: Drover, rolloutId: string, createdAt: number): Promise<Follower> {
  const context = await coldContext(browser, drover.token);
  const page = await context.newPage();
  const openedAfterMs = performance.now() - createdAt;
  await page.goto(`${drover.url}/ui/#/rollouts/${rolloutId}`);
  return { context, page, openedAfterMs };
}

interface Fidelity {
  label: string;
  openedAfterMs: number;
  shown: number;
  missing: number;
  extra: number;
  repeated: number;
  /** The ids shown are the table's, in the table's order. */
  exact: boolean;
  /** Where the page first differs from the table, or null. */
  firstDifference: string | null;
  streamState: string;
}

function firstDifference(shown: (string | null)[], table: string[]): string | null {
  for (let index = 0; index < Math.max(shown.length, table.length); index += 1) {
    if (shown[index] !== table[index]) {
      return `entry ${index + 1}: the page shows ${shown[index] ?? 'nothing'}, the table has ${table[index] ?? 'nothing'}`;
    }
  }
  return null;
}

/** Compares the events a page shows (its stream ended) with the table's rows. */
async function fidelity(follower: Follower, label: string, table: string[]): Promise<Fidelity> {
  const { page } = follower;
  const shown = await page.evaluate(() =>
    Array.from((globalThis as unknown as PageGlobals).document.querySelectorAll('[data-testid=events] li'), (li) =>
      li.getAttribute('data-event-id'),
    ),
  );
  const inTable = new Set(table);
  const inPage = new Set(shown);
  return {
    label,
    openedAfterMs: follower.openedAfterMs,
    shown: shown.length,
    missing: table.filter((id) => !inPage.has(id)).length,
    extra: shown.filter((id) => id === null || !inTable.has(id)).length,
    repeated: shown.length - inPage.size,
    exact: shown.length === table.length && shown.every((id, index) => id === table[index]),
    firstDifference: firstDifference(shown, table),
    streamState: await page.getByTestId('stream-state').innerText(),
  };
}

// ---------------------------------------------------------------------------------------------
// the rollout, followed live

interface RolloutRun {
  id: string;
  status: string;
  /** How many hosts ended in each state. */
  hostStates: Map<string, number>;
  seconds: number;
  events: { id: string; type: string }[];
  pages: Fidelity[];
  /** Cold loads of the rollout's page while it ran. */
  live: Load[];
  /** How long after drover wrote rollout.finished (its row's created_at) the first page showed it; null: never. */
  finishLagMs: number | null;
}

async function eventCount(drover: Drover, rolloutId: string, type: string): Promise<number> {
  const { rows } = await drover.db.query<{ count: string }>(
    'SELECT count(*)::text AS count FROM rollout_events WHERE rollout_id = $1 AND type = $2',
    [rolloutId, type],
  );
  return Number(rows[0]!.count);
}

async function followRollout(browser: Browser, drover: Drover, hosts: number, loads: number): Promise<RolloutRun> {
  const created = await call<Rollout>(drover, 'POST', '/v1/rollouts', rolloutOf(hosts), 201);
  const createdAt = performance.now();
  progress(`rollout ${created.id} started on ${hosts} hosts; two pages follow it, others load it cold meanwhile`);
  let finished = false;
  const done = finishedEvent(drover, created.id).then(() => {
    finished = true;
    return performance.now();
  });
  const first = await openFollower(browser, drover, created.id, createdAt);
  // The first page records when it showed the finished event (Date.now(), the machine's clock).
  const shownFinished = first.page
    .waitForFunction(
      () =>
        (globalThis as unknown as PageGlobals).document.querySelectorAll(
          '[data-testid=events] li[data-event-type="rollout.finished"]',
        ).length > 0
          ? Date.now()
          : false,
      undefined,
      { timeout: ROLLOUT_TIMEOUT_MS, polling: 'raf' },
    )
    .then(
      (handle) => handle.jsonValue() as Promise<number>,
      // Reported as not seen; the comparison of the events says why.
      () => null,
    );
  // The second joins halfway (after the second batch), so it replays the log and then follows live.
  const second = (async () => {
    while (!finished && (await eventCount(drover, created.id, 'batch.finished')) < 2) await sleep(100);
    return openFollower(browser, drover, created.id, createdAt);
  })();
  const live: Load[] = [];
  const url = `${drover.url}/ui/#/rollouts/${created.id}`;
  while (!finished && live.length < loads) {
    live.push(await coldLoad(browser, url, drover.token, { selector: '[data-testid=rollout-host]', count: hosts }));
  }
  const finishedAt = await Promise.race([
    done,
    sleep(ROLLOUT_TIMEOUT_MS).then(() =>
      fail(`rollout ${created.id} did not finish in ${ROLLOUT_TIMEOUT_MS / 1000} s`),
    ),
  ]);
  const joined = await second;
  // The stream ends once the rollout finished and no host is in flight: then the table is complete.
  for (const follower of [first, joined]) {
    await follower.page
      .locator('[data-testid=stream-state]', { hasText: 'ended' })
      .waitFor({ timeout: FOLLOW_TIMEOUT_MS });
  }
  const rollout = await call<Rollout>(drover, 'GET', `/v1/rollouts/${created.id}`, undefined, 200);
  const { rows } = await drover.db.query<{ id: string; type: string; at: string }>(
    `SELECT id::text AS id, type, (extract(epoch FROM created_at) * 1000)::text AS at
       FROM rollout_events WHERE rollout_id = $1 ORDER BY rollout_events.id`,
    [created.id],
  );
  const table = rows.map((row) => row.id);
  const pages = [await fidelity(first, 'opened as it started', table), await fidelity(joined, 'joined halfway', table)];
  const finishedRow = rows.find((row) => row.type === 'rollout.finished') ?? fail('no rollout.finished row');
  const shownAt = await shownFinished;
  const finishLagMs = shownAt === null ? null : shownAt - Number(finishedRow.at);
  for (const follower of [first, joined]) await follower.context.close();
  return {
    id: created.id,
    status: rollout.status,
    hostStates: countBy(rollout.hosts.map((host) => host.state)),
    seconds: (finishedAt - createdAt) / 1000,
    events: rows,
    pages,
    live,
    finishLagMs,
  };
}

// ---------------------------------------------------------------------------------------------
// the report

interface Paint {
  page: string;
  loads: Load[];
  note: string;
  /** The machine's 1-minute load average when the loads began. */
  load: number;
}

interface Measurements {
  options: Options;
  machine: string[];
  fleet: string;
  chromium: string;
  bundle: BundleFile[];
  paints: Paint[];
  rollout: RolloutRun;
}

function paintRow({ page, loads, note, load }: Paint): string {
  if (loads.length === 0) return `| ${page} | 0 | – | – | – | – | ${load.toFixed(1)} | ${note} |`;
  const fcp: Stats = stats(loads.map((load) => load.fcp));
  const ready: Stats = stats(loads.map((load) => load.ready));
  return `| ${page} | ${loads.length} | ${ms(fcp.median)} | ${ms(fcp.min)}–${ms(fcp.max)} | ${ms(ready.median)} | ${ms(ready.min)}–${ms(ready.max)} | ${load.toFixed(1)} | ${note} |`;
}

function report(m: Measurements): string {
  const { options, rollout } = m;
  const gzipTotal = m.bundle.reduce((sum, file) => sum + file.gzip, 0);
  const rawTotal = m.bundle.reduce((sum, file) => sum + file.bytes, 0);
  const servedTotal = m.bundle.reduce((sum, file) => sum + file.served.bytes, 0);
  const encodings = [...new Set(m.bundle.map((file) => file.served.encoding))].join(', ');
  const worstFcp = Math.max(
    ...m.paints.filter((paint) => paint.loads.length > 0).map((paint) => stats(paint.loads.map((l) => l.fcp)).median),
  );
  const faithful = rollout.pages.every((page) => page.exact);
  const types = countBy(rollout.events.map((event) => event.type));
  return [
    '# Web dashboard: bundle, first paint, a live rollout followed without dropping events',
    '',
    '## Run',
    '',
    `- date: ${new Date().toISOString()}; \`node dist/bench/dashboard.js ${
      options.inventory === null ? `--hosts ${options.hosts}` : `--inventory ${options.inventory}`
    } --loads ${options.loads}\``,
    ...m.machine,
    `- browser: ${m.chromium} (Debian's chromium, headless, driven by playwright-core); every load in a new browser context (cold cache, no storage)`,
    `- fleet: ${options.hosts} systemd-nspawn hosts of \`test/fleet/fleet.sh\` (${m.fleet}); drover's API and one worker on this machine, as \`npm run bench:rollout\` runs them`,
    '',
    '## Goals',
    '',
    '| goal | measured | verdict |',
    '|---|---|---|',
    `| bundle under 300 KB gzipped | ${kb(gzipTotal)} (gzip -9 of everything /ui loads; ${kb(rawTotal)} uncompressed) | ${verdict(gzipTotal < BUNDLE_GOAL_BYTES)} |`,
    `| first paint under 1 s from localhost | slowest median first-contentful-paint: ${ms(worstFcp)} ms (table below) | ${verdict(worstFcp < PAINT_GOAL_MS)} |`,
    `| the live rollout page follows a ${options.hosts}-host rollout without dropping events | ${rollout.events.length} rows in rollout_events; ` +
      rollout.pages
        .map((page) => `page ${page.label}: ${page.shown} shown, ${page.missing} missing, ${page.repeated} repeated`)
        .join('; ') +
      ` | ${verdict(faithful)} |`,
    '',
    '## Bundle',
    '',
    '| file | bytes | gzip -9 | brotli 11 | as the API serves it |',
    '|---|--:|--:|--:|---|',
    ...m.bundle.map(
      (file) =>
        `| \`${file.name}\` | ${file.bytes} | ${file.gzip} | ${file.brotli} | ${file.served.bytes} bytes, Content-Encoding ${file.served.encoding} |`,
    ),
    `| total | ${rawTotal} | ${gzipTotal} | ${m.bundle.reduce((sum, file) => sum + file.brotli, 0)} | ${servedTotal} bytes (${encodings}) |`,
    '',
    `The API serves dist/ui as it is (Content-Encoding ${encodings}, asked with \`Accept-Encoding: gzip, deflate, br\`), so ` +
      'on the wire from the API itself the page is the uncompressed size; gzip -9 is what a compressing proxy in front of it sends. ' +
      'The goal is held against gzip -9 of every file /ui loads (index.html, app.js, app.css), 300 KB = 300,000 bytes.',
    '',
    '## First paint',
    '',
    `Cold loads (a new browser context each), ${options.loads} per page unless noted; ms after the navigation started. ` +
      '"content" is when the page showed what it is for: the sign-in field, every host row in view, every cell of the rollout\'s host grid.',
    '',
    '| page | loads | FCP median ms | FCP min–max | content median ms | content min–max | load avg | what "content" waits for |',
    '|---|--:|--:|--:|--:|--:|--:|---|',
    ...m.paints.map(paintRow),
    '',
    '## The rollout, followed live',
    '',
    `- \`POST /v1/rollouts\` ${JSON.stringify(rolloutOf(options.hosts)).replace(/\|/g, '\\|')} on ${options.hosts} hosts: ${rollout.status} in ${rollout.seconds.toFixed(1)} s (until its rollout.finished event); hosts ${listCounts(rollout.hostStates)}`,
    `- rows in rollout_events for it: ${rollout.events.length} (${listCounts(types)})`,
    rollout.finishLagMs === null
      ? '- the first page never showed the rollout.finished event'
      : `- the first page showed rollout.finished ${ms(rollout.finishLagMs)} ms after drover wrote it (its row's created_at)`,
    '',
    '| page | opened (s after the POST) | events shown | missing | not in the table | repeated | same ids, same order | stream |',
    '|---|--:|--:|--:|--:|--:|---|---|',
    ...rollout.pages.map(
      (page) =>
        `| ${page.label} | ${(page.openedAfterMs / 1000).toFixed(1)} | ${page.shown} | ${page.missing} | ${page.extra} | ${page.repeated} | ${page.exact ? 'yes' : `no: ${page.firstDifference}`} | ${page.streamState} |`,
    ),
    '',
    'Each page is a real browser tab on `/ui/#/rollouts/<id>`, signed in, following `GET /v1/rollouts/<id>/events` (server-sent ' +
      'events) as a user would; once its stream ended, the `data-event-id` of every entry of its event log is compared with ' +
      '`SELECT id FROM rollout_events WHERE rollout_id = $1 ORDER BY id`. While the two pages follow, other cold loads of the same ' +
      'page run one after another (the "live" row of the first-paint table), so the machine also serves new readers mid-rollout.',
    '',
    '## Reading the numbers',
    '',
    '- Everything runs on one machine: the fleet, PostgreSQL, Redis, drover, and Chromium share its cores, so paint times under ' +
      'a running rollout include that contention. Other work on the machine (it is shared) shows up in the min–max spread.',
    '- First contentful paint is the browser\'s own `first-contentful-paint` paint timing entry; "content" is measured in the ' +
      'page with `performance.now()` when the condition first held (checked every animation frame).',
    "- load avg: the machine's 1-minute load average (`/proc/loadavg`) as the loads of that row began; on 2 cores anything " +
      'above 2 means processes waited for a core, the browser among them.',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// the run

/** The hosts of an inventory file, up already (their SSH key is the fleet's, in DROVER_FLEET_STATE). */
async function givenHosts(file: string): Promise<{ hosts: FleetHost[]; fleet: string }> {
  const { hosts } = JSON.parse(await readFile(file, 'utf8')) as { hosts: FleetHost[] };
  progress(`using the ${hosts.length} hosts of ${file}, up already`);
  return { hosts, fleet: `the ${hosts.length} hosts of an inventory given with --inventory, up already` };
}

async function benchmark(options: Options, teardown: Teardown): Promise<void> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'drover-bench-dashboard-'));
  progress(`logs in ${workDir} (kept if the run fails)`);
  await ensureServices();
  const { hosts, fleet } =
    options.inventory === null
      ? await provideFleet(options.hosts, options.keepFleet, teardown)
      : await givenHosts(options.inventory);
  options.hosts = hosts.length;
  const drover = await startDrover(
    hosts,
    { database: options.database, queuePrefix: options.database, port: options.port, workDir },
    teardown,
  );
  const bundle = await measureBundle(drover.url);
  progress(`bundle: ${bundle.map((file) => `${file.name} ${file.gzip} B gzipped`).join(', ')}`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  teardown.add('closing the browser', () => browser.close());
  const ui = `${drover.url}/ui/`;
  const paints: Paint[] = [];
  const load = () => os.loadavg()[0]!;
  // One load first, not counted: the API's and the browser's first-use costs are not a user's.
  await coldLoad(browser, ui, null, { selector: '#token', count: 1 });
  paints.push({
    load: load(),
    page: '`/ui/` signed out',
    loads: await coldLoads(browser, options.loads, ui, null, { selector: '#token', count: 1 }),
    note: 'the token field',
  });
  paints.push({
    load: load(),
    page: `\`/ui/\` signed in: the fleet (${hosts.length} hosts)`,
    loads: await coldLoads(browser, options.loads, ui, drover.token, { selector: '[data-testid=host-row]', count: 1 }),
    note: 'the host count and the first host rows',
  });
  progress(`first paint of /ui measured (${options.loads} cold loads each, signed out and in)`);

  const rolloutLoad = load();
  const rollout = await followRollout(browser, drover, hosts.length, options.loads);
  progress(
    `rollout ${rollout.status} in ${rollout.seconds.toFixed(1)} s; ${rollout.events.length} events; ` +
      rollout.pages.map((page) => `${page.label}: ${page.shown} shown, exact ${page.exact}`).join('; '),
  );
  paints.push({
    load: rolloutLoad,
    page: `rollout page, live (${hosts.length} hosts)`,
    loads: rollout.live,
    note:
      rollout.live.length < options.loads
        ? `every host's cell; loads while the rollout ran (${rollout.live.length}: it ended first)`
        : "every host's cell; loads while the rollout ran",
  });
  paints.push({
    load: load(),
    page: `rollout page, finished (${rollout.events.length} events)`,
    loads: await coldLoads(browser, options.loads, `${drover.url}/ui/#/rollouts/${rollout.id}`, drover.token, {
      selector: '[data-testid=events] li[data-event-type="rollout.finished"]',
      count: 1,
    }),
    note: 'the event log replayed up to rollout.finished',
  });

  const markdown = report({
    options,
    machine: await machine(drover.db),
    fleet,
    chromium: browser.version(),
    bundle,
    paints,
    rollout,
  });
  await writeReport(markdown, options.out);
  await rm(workDir, { recursive: true, force: true });
}

runBenchmark('dashboard', (teardown) => benchmark(parseOptions(process.argv.slice(2)), teardown));
