import { execFileSync } from 'node:child_process';

/** Thrown for a command line whose words would depend on expansion: the fuzz tests count that as a failure. */
export class UnquotedShellSyntax extends Error {}

/**
 * The words a POSIX shell (XCU 2.2 Quoting, 2.3 Token Recognition) makes of a command line that
 * uses only the quoting drover emits: blanks separate words; inside '...' every character is
 * itself; outside quotes `\c` is c. Exact for that subset, and it throws on everything else a
 * shell would read as syntax (unquoted $ ` " ; & | < > ( ) newline, glob characters, ~ and #,
 * even unquoted letters), so a line it accepts can mean nothing but these words.
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const char = line[i]!;
    if (char === ' ' || char === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i += 1;
    } else if (char === "'") {
      const close = line.indexOf("'", i + 1);
      if (close === -1) throw new UnquotedShellSyntax(`unterminated ' at ${i}`);
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (char === '\\') {
      const next = line[i + 1];
      // A backslash-newline is a line continuation, not a character; a final backslash is undefined.
      if (next === undefined || next === '\n') throw new UnquotedShellSyntax(`backslash at ${i} escapes no character`);
      word += next;
      inWord = true;
      i += 2;
    } else {
      throw new UnquotedShellSyntax(`unquoted ${JSON.stringify(char)} at ${i}`);
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * The words a real shell gives the command of each line, in one run of `shell` for all lines
 * (thousands of lines cost one process). Each word is printed as W<word>NUL and each line ends
 * with ENUL, so empty words and words holding any other character come back intact.
 */
export function wordsFromRealShell(shell: string, lines: readonly string[]): string[][] {
  const script = lines.map((line) => `printf 'W%s\\0' ${line}; printf 'E\\0'\n`).join('');
  const output = execFileSync(shell, ['-s'], { input: script, maxBuffer: 256 * 1024 * 1024 }).toString('utf8');
  const result: string[][] = [];
  let current: string[] = [];
  for (const field of output.split('\0').slice(0, -1)) {
    if (field === 'E') {
      result.push(current);
      current = [];
    } else if (field.startsWith('W')) {
      current.push(field.slice(1));
    } else {
      throw new Error(`unexpected output field ${JSON.stringify(field)}`);
    }
  }
  return result;
}
