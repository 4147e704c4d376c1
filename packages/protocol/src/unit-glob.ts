/**
 * Globs over systemd unit names, bounding what a token may act on: `*` matches any run of
 * characters (including none), `?` exactly one, `[...]` one of a set such as `[abc]` or `[0-9]`.
 * Every other character is literal; there is no escaping (and no negated class) because `*?[]`
 * can never occur in a unit name, so `\` (systemd's own escape, as in `dev-sda\x2d1.device`) is an
 * ordinary character. Matching is done by hand, never through a RegExp built from request text.
 */

export const UNIT_GLOB_MAX_LENGTH = 256;

/** Characters of unit names (systemd.unit(5)), which a glob may use literally and in classes. */
const UNIT_NAME_CHAR = /^[A-Za-z0-9:_.\\@-]$/;

type GlobPart =
  | { kind: 'literal'; char: string }
  | { kind: 'one' }
  | { kind: 'star' }
  | { kind: 'class'; ranges: [string, string][] };

export type UnitGlob = readonly GlobPart[];

class GlobSyntaxError extends Error {}

function parseClass(glob: string, open: number): { part: GlobPart; next: number } {
  const ranges: [string, string][] = [];
  let i = open + 1;
  while (i < glob.length && glob[i] !== ']') {
    const low = glob[i] as string;
    if (!UNIT_NAME_CHAR.test(low)) {
      throw new GlobSyntaxError(`'${low}' at position ${i} cannot appear inside [...]`);
    }
    // '-' between two characters is a range; first or last in the class it is itself.
    if (glob[i + 1] === '-' && i + 2 < glob.length && glob[i + 2] !== ']') {
      const high = glob[i + 2] as string;
      if (!UNIT_NAME_CHAR.test(high)) {
        throw new GlobSyntaxError(`'${high}' at position ${i + 2} cannot appear inside [...]`);
      }
      if (high < low) throw new GlobSyntaxError(`range '${low}-${high}' at position ${i} is backwards`);
      ranges.push([low, high]);
      i += 3;
    } else {
      ranges.push([low, low]);
      i += 1;
    }
  }
  if (i >= glob.length) throw new GlobSyntaxError(`'[' at position ${open} is not closed by ']'`);
  if (ranges.length === 0) throw new GlobSyntaxError(`'[]' at position ${open} matches nothing`);
  return { part: { kind: 'class', ranges }, next: i + 1 };
}

/** Parses a unit glob; throws GlobSyntaxError saying where it is malformed. */
function parse(glob: string): UnitGlob {
  if (glob.length === 0 || glob.length > UNIT_GLOB_MAX_LENGTH) {
    throw new GlobSyntaxError(`must be 1-${UNIT_GLOB_MAX_LENGTH} characters`);
  }
  const parts: GlobPart[] = [];
  let i = 0;
  while (i < glob.length) {
    const char = glob[i] as string;
    if (char === '[') {
      const { part, next } = parseClass(glob, i);
      parts.push(part);
      i = next;
      continue;
    }
    if (char === '*') {
      // `**` means the same as `*`; one star keeps matching linear.
      if (parts[parts.length - 1]?.kind !== 'star') parts.push({ kind: 'star' });
    } else if (char === '?') {
      parts.push({ kind: 'one' });
    } else if (char === ']') {
      throw new GlobSyntaxError(`']' at position ${i} has no matching '['`);
    } else if (UNIT_NAME_CHAR.test(char)) {
      parts.push({ kind: 'literal', char });
    } else {
      throw new GlobSyntaxError(
        `'${char}' at position ${i} is not allowed: use unit-name characters (A-Za-z0-9:_.-\\@) and * ? [...]`,
      );
    }
    i += 1;
  }
  return parts;
}

/** Why `glob` is not a valid unit glob, or null when it is. */
export function unitGlobProblem(glob: string): string | null {
  try {
    parse(glob);
    return null;
  } catch (error) {
    if (error instanceof GlobSyntaxError) return error.message;
    throw error;
  }
}

/** Compiles a glob once for many matches. Throws Error on a malformed glob (validate it first). */
export function compileUnitGlob(glob: string): UnitGlob {
  return parse(glob);
}

function matchesOne(part: Exclude<GlobPart, { kind: 'star' }>, char: string): boolean {
  switch (part.kind) {
    case 'literal':
      return part.char === char;
    case 'one':
      return true;
    case 'class':
      return part.ranges.some(([low, high]) => low <= char && char <= high);
  }
}

/**
 * Whether `name` matches the whole glob. Classic wildcard matching with one backtrack point:
 * on a mismatch, retry from the last `*` with it swallowing one more character. Since every other
 * part matches exactly one character, this is complete and O(glob × name) at worst.
 */
export function matchesUnitGlob(glob: UnitGlob | string, name: string): boolean {
  const parts = typeof glob === 'string' ? compileUnitGlob(glob) : glob;
  let p = 0;
  let n = 0;
  let starPart = -1;
  let starName = 0;
  while (n < name.length) {
    const part = parts[p];
    if (part?.kind === 'star') {
      starPart = p;
      starName = n;
      p += 1;
    } else if (part !== undefined && matchesOne(part, name[n] as string)) {
      p += 1;
      n += 1;
    } else if (starPart !== -1) {
      p = starPart + 1;
      starName += 1;
      n = starName;
    } else {
      return false;
    }
  }
  while (parts[p]?.kind === 'star') p += 1;
  return p === parts.length;
}
