import type { Verb } from '@drover/protocol';
import { unitNameProblem } from './unit-name';
import { isTemplate } from './unit-names';

/**
 * Every unit systemd has in memory: running ones, and with --all also inactive, masked and
 * not-found ones that something references. Text, not JSON: systemd 252 has no --output=json here.
 */
export const LIST_UNITS_ARGV = ['systemctl', 'list-units', '--all', '--plain', '--no-legend', '--no-pager', '--full'];

/** Every installed unit file and its enablement state, loaded or not. */
export const LIST_UNIT_FILES_ARGV = ['systemctl', 'list-unit-files', '--plain', '--no-legend', '--no-pager', '--full'];

export interface DiscoveredUnit {
  name: string;
  loadState: string;
  activeState: string;
  subState: string;
  description: string | null;
  unitFileState: string | null;
}

/**
 * The load state of a unit file systemd has not loaded (nothing references it). Not a systemd
 * LoadState: systemd would load it on first use, and only then know whether the file is valid.
 */
export const NOT_LOADED = 'not-loaded';

interface ListedUnit {
  loadState: string;
  activeState: string;
  subState: string;
  description: string;
}

function tokens(line: string): { text: string; start: number }[] {
  return [...line.matchAll(/\S+/g)].map((match) => ({ text: match[0], start: match.index }));
}

/**
 * Columns UNIT LOAD ACTIVE SUB [JOB] DESCRIPTION, space-padded to a common width. Only the
 * description may contain spaces, and a JOB column (start, stop...) appears between SUB and it
 * while any unit has a pending job, blank on the other rows. The description therefore starts at
 * the first offset after SUB where every row has a word: a blank JOB cell rules out the JOB
 * column. (Were every row to have a job, which a full `--all` listing never has, the job would be
 * read as the description's first word.)
 */
function parseListUnits(output: string): Map<string, ListedUnit> {
  const rows = output
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const words = tokens(line);
      const [name, loadState, activeState, subState] = words.map((word) => word.text);
      if (name === undefined || loadState === undefined || activeState === undefined || subState === undefined) {
        throw new Error(`cannot read systemctl list-units line ${JSON.stringify(line)}`);
      }
      return { line, words, name, loadState, activeState, subState };
    });

  const withDescription = rows.filter(({ words }) => words.length > 4);
  const starts = withDescription.map(({ words }) => new Set(words.slice(4).map((word) => word.start)));
  const common = [...(starts[0] ?? [])].filter((start) => starts.every((row) => row.has(start)));
  if (withDescription.length > 0 && common.length === 0) {
    throw new Error('cannot find the DESCRIPTION column of systemctl list-units: its rows do not line up');
  }
  const descriptionStart = Math.min(...common);

  const units = new Map<string, ListedUnit>();
  for (const { line, words, name, loadState, activeState, subState } of rows) {
    const description = words.length > 4 ? line.slice(descriptionStart).trimEnd() : '';
    units.set(name, { loadState, activeState, subState, description });
  }
  return units;
}

/** Columns UNIT FILE, STATE and, since systemd 245, PRESET: none of them contains spaces. */
function parseListUnitFiles(output: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const line of output.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const [name, state, ...rest] = line.trim().split(/\s+/);
    if (name === undefined || state === undefined || rest.length > 1) {
      throw new Error(`cannot read systemctl list-unit-files line ${JSON.stringify(line)}`);
    }
    files.set(name, state);
  }
  return files;
}

/**
 * Merges list-units (what systemd has loaded) with list-unit-files (what is installed), one entry
 * per unit name, sorted by name. Left out: templates (foo@.service: recipes for instances, not
 * units), aliases (another name for a unit listed under its own name; acting on one acts on the
 * other) and names drover would refuse to act on (such as -.mount).
 */
export function parseDiscovery(listUnitsOutput: string, listUnitFilesOutput: string): DiscoveredUnit[] {
  const loaded = parseListUnits(listUnitsOutput);
  const files = parseListUnitFiles(listUnitFilesOutput);
  const units = new Map<string, DiscoveredUnit>();

  for (const [name, unit] of loaded) {
    if (unitNameProblem(name) !== null) continue;
    units.set(name, {
      name,
      loadState: unit.loadState,
      activeState: unit.activeState,
      subState: unit.subState,
      // systemd shows the name when a unit has no Description=.
      description: unit.description === '' || unit.description === name ? null : unit.description,
      unitFileState: files.get(name) ?? null,
    });
  }
  for (const [name, state] of files) {
    if (units.has(name) || state === 'alias' || isTemplate(name) || unitNameProblem(name) !== null) continue;
    // Not in memory means not running: nothing references it, so nothing started it.
    units.set(name, {
      name,
      loadState: NOT_LOADED,
      activeState: 'inactive',
      subState: 'dead',
      description: null,
      unitFileState: state,
    });
  }
  return [...units.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Verbs after which units other than the acted one may show other unit files or enablement:
 * enable and disable follow Also= and Alias=, daemon-reload reads every unit file again. After
 * the others, the acted unit's own after-snapshot and the units whose state changed tell it all.
 */
export const VERBS_CHANGING_OTHER_UNITS: readonly Verb[] = ['enable', 'disable', 'daemon-reload'];

/** The most unit names one partial listing names on its command line (more: a full listing). */
export const MAX_NAMED_UNITS = 200;

/** What `systemctl list-units` says of a unit: how it is loaded and how it runs. */
export type ListedState = Pick<DiscoveredUnit, 'loadState' | 'activeState' | 'subState'>;

/**
 * The units to list again so that `stored` (a host's units as last recorded) matches the host,
 * judged by `loaded`: what a fresh `list-units --all` shows (parseDiscovery of it alone). Those
 * are the units loaded now and listed otherwise or not at all, and the units recorded as loaded
 * that systemd has since let go (they are now not loaded, or gone). Null when a full listing is
 * due instead: nothing is recorded yet, or more than MAX_NAMED_UNITS would be named.
 *
 * list-units is cheap for systemd (what it holds in memory); list-unit-files without names makes
 * it read the enablement of every installed unit file, hundreds of milliseconds of PID 1.
 */
export function unitsToListAgain(
  loaded: readonly DiscoveredUnit[],
  stored: ReadonlyMap<string, ListedState>,
): string[] | null {
  if (stored.size === 0) return null;
  const names = new Set<string>();
  for (const unit of loaded) {
    const known = stored.get(unit.name);
    if (
      known?.loadState !== unit.loadState ||
      known.activeState !== unit.activeState ||
      known.subState !== unit.subState
    ) {
      names.add(unit.name);
    }
  }
  const loadedNow = new Set(loaded.map((unit) => unit.name));
  for (const [name, known] of stored) {
    if (known.loadState !== NOT_LOADED && !loadedNow.has(name)) names.add(name);
  }
  return names.size > MAX_NAMED_UNITS ? null : [...names].sort();
}
