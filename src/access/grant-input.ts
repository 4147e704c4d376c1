import { VERBS } from '@drover/protocol';
import { snapshotArgv, unitNameProblem } from '@drover/systemd';
import type { FieldError } from '../common/errors/domain-errors';

/** What a grant file is called and what enforces it, for the words of its problems. */
export interface GrantKind {
  /** The enforcer refusing what the grant does not allow, e.g. "sudo". */
  enforcer: string;
  /** Why a unit glob cannot be granted, in the enforcer's terms. */
  noGlobs: string;
  /** The grant as a file or rule, e.g. "units per file". */
  maxUnits: number;
  unitsPer: string;
}

function unitProblem(unit: string, kind: GrantKind): string | null {
  if (/[*?[\]]/.test(unit)) return `unit globs are not supported: ${kind.noGlobs}; list every unit by its full name`;
  const problem = unitNameProblem(unit);
  if (problem !== null) return problem;
  try {
    // drover reads a unit's state before and after every verb, which systemd has only for
    // instances, never for templates: the message says so and names an instance to use instead.
    snapshotArgv(unit);
  } catch (error) {
    return (error as Error).message;
  }
  return null;
}

/**
 * What is wrong with the verbs and units a least-privilege grant (a sudoers drop-in, a polkit
 * rule) would allow, by field: the rules both share.
 */
export function grantProblems(
  input: { verbs: readonly string[]; units: readonly string[] },
  kind: GrantKind,
): FieldError[] {
  const problems: FieldError[] = [];
  if (input.verbs.length === 0) problems.push({ field: 'verbs', message: 'must name at least one verb' });
  input.verbs.forEach((verb, index) => {
    if (!(VERBS as readonly string[]).includes(verb)) {
      problems.push({ field: `verbs[${index}]`, message: `must be one of ${VERBS.join(', ')}` });
    }
  });
  if (input.verbs.includes('mask') && !input.verbs.includes('start')) {
    problems.push({
      field: 'verbs',
      message: `mask needs start as well: drover checks a mask by trying to start the unit, which systemd must refuse as masked (${kind.enforcer} refusing it first would fail the task)`,
    });
  }
  if (input.units.length === 0) problems.push({ field: 'units', message: 'must name at least one unit' });
  if (input.units.length > kind.maxUnits) {
    problems.push({ field: 'units', message: `at most ${kind.maxUnits} ${kind.unitsPer}` });
  }
  input.units.forEach((unit, index) => {
    const problem = unitProblem(unit, kind);
    if (problem !== null) problems.push({ field: `units[${index}]`, message: problem });
  });
  return problems;
}

/** Words after `first`, broken between words before `width` characters; later lines begin with `next`. */
export function wrapWords(first: string, next: string, words: readonly string[], width = 100): string[] {
  const lines: string[] = [];
  let line = first;
  for (const word of words) {
    if (line.length + 1 + word.length > width && line !== first) {
      lines.push(line);
      line = next;
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

/** A comma-separated list in a comment (`marker`: # or //) after `prefix`, continued aligned under it. */
export function wrapCommentList(marker: string, prefix: string, items: readonly string[]): string[] {
  const words = items.map((item, index) => (index < items.length - 1 ? `${item},` : item));
  return wrapWords(prefix, `${marker}${' '.repeat(prefix.length - marker.length)}`, words);
}
