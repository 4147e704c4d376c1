import { createHash } from 'node:crypto';
import type { CommandResult } from './host';
import { assertUnitName } from './unit-names';

/**
 * What discovery records of each unit's definition, to compare hosts (drift): where it comes from,
 * how it runs, and whether systemd is running an older version of it than the one on disk.
 * NRestarts is here because flapping (automatic restarts between two discoveries) is drift in time.
 */
export const DEFINITION_PROPERTIES = [
  'Id',
  'FragmentPath',
  'DropInPaths',
  'Type',
  'Restart',
  'NRestarts',
  'NeedDaemonReload',
] as const;

type DefinitionProperty = (typeof DEFINITION_PROPERTIES)[number];

export interface UnitDefinitionFacts {
  name: string;
  fragmentPath: string | null;
  dropInPaths: string[];
  /** Type= and Restart=: services only (null for other unit types). */
  serviceType: string | null;
  restart: string | null;
  nRestarts: number | null;
  needDaemonReload: boolean;
}

export interface UnitDefinition extends UnitDefinitionFacts {
  /**
   * SHA-256 over each file systemd built the unit from (the files `systemctl cat` prints), in
   * order: its path and the SHA-256 of its content. Equal hashes, equal definitions. Null when the
   * unit has no file (not found, or generated in memory) or a file could not be read.
   */
  definitionHash: string | null;
}

/**
 * The paths systemd reports are its own, but they reach a command line: only plain absolute paths
 * are passed on (no "..", no whitespace or shell-special characters).
 */
const SAFE_PATH = /^(?:\/[A-Za-z0-9@._:+\\-]+)+$/;

export function isSafeUnitFilePath(path: string): boolean {
  return SAFE_PATH.test(path) && !path.split('/').includes('..');
}

/** `systemctl show` of the definition properties of these units, in one call (blocks in order). */
export function definitionShowArgv(units: readonly string[]): string[] {
  for (const unit of units) assertUnitName(unit);
  return ['systemctl', 'show', '--no-pager', `--property=${DEFINITION_PROPERTIES.join(',')}`, '--', ...units];
}

/**
 * Reads the output of `definitionShowArgv`: one block of Name=value lines per unit, separated by a
 * blank line. Keyed by Id; a block without an Id (which systemd does not print) is an error.
 */
export function parseDefinitionShow(output: string): Map<string, UnitDefinitionFacts> {
  const known: ReadonlySet<string> = new Set(DEFINITION_PROPERTIES);
  const facts = new Map<string, UnitDefinitionFacts>();
  for (const block of output.split(/\r?\n\r?\n/)) {
    if (block.trim() === '') continue;
    const values = new Map<DefinitionProperty, string>();
    for (const line of block.split(/\r?\n/)) {
      const equals = line.indexOf('=');
      const name = line.slice(0, equals);
      if (equals !== -1 && known.has(name)) values.set(name as DefinitionProperty, line.slice(equals + 1));
    }
    const id = values.get('Id');
    if (id === undefined || id === '') throw new Error(`systemctl show printed a block without Id=: ${block}`);
    const text = (name: DefinitionProperty): string | null => {
      const value = values.get(name);
      return value === undefined || value === '' ? null : value;
    };
    const isService = id.endsWith('.service');
    const restarts = text('NRestarts');
    facts.set(id, {
      name: id,
      fragmentPath: text('FragmentPath'),
      dropInPaths: (text('DropInPaths') ?? '').split(' ').filter((path) => path !== ''),
      serviceType: isService ? text('Type') : null,
      restart: isService ? text('Restart') : null,
      nRestarts: isService && restarts !== null && /^\d+$/.test(restarts) ? Number(restarts) : null,
      needDaemonReload: values.get('NeedDaemonReload') === 'yes',
    });
  }
  return facts;
}

/** The files a unit is built from, in the order systemd applies them. */
export function definitionFiles(unit: UnitDefinitionFacts): string[] {
  return [...(unit.fragmentPath === null ? [] : [unit.fragmentPath]), ...unit.dropInPaths];
}

/** `sha256sum` of these files (a file it cannot read is an error line on stderr, not a failure of the rest). */
export function hashFilesArgv(paths: readonly string[]): string[] {
  for (const path of paths) {
    if (!isSafeUnitFilePath(path))
      throw new Error(`refusing to read ${JSON.stringify(path)}: not a plain absolute path`);
  }
  return ['sha256sum', '--', ...paths];
}

/**
 * Reads `sha256sum` output: "HASH  PATH" per readable file. sha256sum escapes names with a
 * backslash or newline by prefixing the line with "\", which safe paths never need.
 */
export function parseFileHashes(output: string): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const line of output.split(/\r?\n/)) {
    const match = /^([0-9a-f]{64}) [ *](\/.*)$/.exec(line);
    if (match) hashes.set(match[2]!, match[1]!);
  }
  return hashes;
}

/** The definition hash of a unit from its files' hashes; null when it has no file or one is unread. */
export function definitionHash(unit: UnitDefinitionFacts, fileHashes: ReadonlyMap<string, string>): string | null {
  const files = definitionFiles(unit);
  if (files.length === 0) return null;
  const digest = createHash('sha256');
  for (const path of files) {
    const fileHash = fileHashes.get(path);
    if (fileHash === undefined) return null;
    digest.update(`${path}\0${fileHash}\n`);
  }
  return digest.digest('hex');
}

/** `systemctl cat` of these units: each file with a "# PATH" line before it, a blank line between files. */
export function catArgv(units: readonly string[]): string[] {
  for (const unit of units) assertUnitName(unit);
  return ['systemctl', 'cat', '--no-pager', '--', ...units];
}

/** The SHA-256 of an empty file: what a masked unit's file (a link to /dev/null) hashes to. */
const EMPTY_FILE_HASH = createHash('sha256').update('').digest('hex');

/**
 * Splits `systemctl cat` output of these units into each unit's text. The files expected are known
 * (from systemctl show) and so are their hashes: each file's content runs from its "# PATH" line
 * up to the next expected one found, and counts only if it hashes to what sha256sum said. So a
 * definition whose files changed since, or next to something systemctl printed instead of a file
 * ("# Unit x is masked."), is left out (the next discovery reads it again), never stored wrong.
 */
export function parseCatOutput(
  output: string,
  units: readonly UnitDefinition[],
  fileHashes: ReadonlyMap<string, string>,
): Map<string, string> {
  // A blank line separates files; the first has none before it.
  const text = `\n${output}`;
  const found: { unit: UnitDefinition; path: string; headerAt: number; bodyAt: number }[] = [];
  let position = 0;
  for (const unit of units) {
    for (const path of definitionFiles(unit)) {
      const header = `\n# ${path}\n`;
      const headerAt = text.indexOf(header, position);
      if (headerAt === -1) continue;
      found.push({ unit, path, headerAt, bodyAt: headerAt + header.length });
      position = headerAt + header.length;
    }
  }
  const contents = new Map<UnitDefinition, Map<string, string>>();
  found.forEach(({ unit, path, bodyAt }, index) => {
    const unitContents = contents.get(unit) ?? new Map<string, string>();
    unitContents.set(path, text.slice(bodyAt, found[index + 1]?.headerAt ?? text.length));
    contents.set(unit, unitContents);
  });
  const texts = new Map<string, string>();
  for (const [unit, unitContents] of contents) {
    const definition = definitionText(unit, fileHashes, unitContents);
    if (definition !== null && unit.definitionHash !== null) texts.set(unit.definitionHash, definition);
  }
  return texts;
}

/**
 * The text of a definition as `systemctl cat` prints it, from its files' contents; null when a
 * content is missing or no longer matches its recorded hash.
 */
export function definitionText(
  unit: UnitDefinitionFacts,
  fileHashes: ReadonlyMap<string, string>,
  contents: ReadonlyMap<string, string>,
): string | null {
  const parts: string[] = [];
  for (const path of definitionFiles(unit)) {
    const content = contents.get(path);
    if (content === undefined || createHash('sha256').update(content).digest('hex') !== fileHashes.get(path)) {
      return null;
    }
    parts.push(`# ${path}\n${content}`);
  }
  return parts.join('\n');
}

type Run = (argv: readonly string[]) => Promise<CommandResult>;

/** Files hashed per call: command lines stay far below ARG_MAX on hosts with thousands of units. */
const FILES_PER_CALL = 500;

/**
 * The definitions of these units as the host has them now: one `systemctl show` and one
 * `sha256sum` per 500 files. A unit systemd does not know comes back without a definition.
 */
export async function readUnitDefinitions(
  run: Run,
  units: readonly string[],
): Promise<{ definitions: UnitDefinition[]; fileHashes: Map<string, string> }> {
  if (units.length === 0) return { definitions: [], fileHashes: new Map() };
  const shown = await run(definitionShowArgv(units));
  if (shown.exitCode !== 0) throw new Error(`systemctl show failed: ${shown.stderr.trim()}`);
  const facts = [...parseDefinitionShow(shown.stdout).values()];
  const files = [...new Set(facts.flatMap(definitionFiles))].filter(isSafeUnitFilePath);
  const fileHashes = new Map<string, string>();
  for (let start = 0; start < files.length; start += FILES_PER_CALL) {
    // Exit status 1 means some file could not be read (removed since systemd loaded it): its unit
    // gets no hash; the others are still good.
    const hashed = await run(hashFilesArgv(files.slice(start, start + FILES_PER_CALL)));
    for (const [path, hash] of parseFileHashes(hashed.stdout)) fileHashes.set(path, hash);
  }
  return {
    definitions: facts.map((unit) => ({ ...unit, definitionHash: definitionHash(unit, fileHashes) })),
    fileHashes,
  };
}

/** Units per `systemctl cat`: its output stays well below the executor's output cap. */
const UNITS_PER_CAT = 50;

/**
 * The `systemctl cat` text of each of these definitions (one unit per hash), read with one
 * `systemctl cat` per 50 units; a definition whose files changed meanwhile is left out.
 */
export async function readDefinitionTexts(
  run: Run,
  definitions: readonly UnitDefinition[],
  fileHashes: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  const byHash = new Map<string, UnitDefinition>();
  for (const unit of definitions) {
    if (unit.definitionHash !== null && !byHash.has(unit.definitionHash)) byHash.set(unit.definitionHash, unit);
  }
  const texts = new Map<string, string>();
  // Empty files (masked units) need no reading, and systemctl cat prints a note instead of them.
  const isEmpty = (path: string) => fileHashes.get(path) === EMPTY_FILE_HASH;
  const units: UnitDefinition[] = [];
  for (const [hash, unit] of byHash) {
    const files = definitionFiles(unit);
    if (!files.every(isEmpty)) units.push(unit);
    else texts.set(hash, definitionText(unit, fileHashes, new Map(files.map((path) => [path, ''])))!);
  }
  for (let start = 0; start < units.length; start += UNITS_PER_CAT) {
    const batch = units.slice(start, start + UNITS_PER_CAT);
    // Exit status 1 when some unit has no file any more: what it printed for the others still counts.
    const shown = await run(catArgv(batch.map((unit) => unit.name)));
    for (const [hash, text] of parseCatOutput(shown.stdout, batch, fileHashes)) texts.set(hash, text);
  }
  return texts;
}

/** The facts, file hashes and (when sent) text of a definition as an agent reports it. */
export interface ReportedDefinitionInput extends UnitDefinitionFacts {
  fileHashes: { path: string; sha256: string }[];
  text?: string | undefined;
}

/**
 * A definition an agent reported, with its hash computed here from the file hashes it sent (so
 * a host can only ever describe its own files), and its text only when it matches them.
 */
export function acceptReportedDefinition(reported: ReportedDefinitionInput): {
  definition: UnitDefinition;
  text: string | null;
} {
  const { fileHashes: sent, text, ...facts } = reported;
  const fileHashes = new Map(sent.map((file) => [file.path, file.sha256]));
  const definition = { ...facts, definitionHash: definitionHash(facts, fileHashes) };
  if (text === undefined || definition.definitionHash === null) return { definition, text: null };
  return { definition, text: parseCatOutput(text, [definition], fileHashes).get(definition.definitionHash) ?? null };
}

/** What an agent reports of these definitions: facts and file hashes, and the texts it read. */
export function reportDefinitions(
  definitions: readonly UnitDefinition[],
  fileHashes: ReadonlyMap<string, string>,
  texts: ReadonlyMap<string, string>,
): ReportedDefinitionInput[] {
  return definitions.map(({ definitionHash: hash, ...facts }) => {
    const text = hash === null ? undefined : texts.get(hash);
    return {
      ...facts,
      fileHashes: definitionFiles(facts).flatMap((path) => {
        const sha256 = fileHashes.get(path);
        return sha256 === undefined ? [] : [{ path, sha256 }];
      }),
      ...(text === undefined ? {} : { text }),
    };
  });
}
