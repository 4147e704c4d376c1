/**
 * Turns an argv into one POSIX sh command line that runs exactly that argv. SSH carries a single
 * string that the remote login shell parses, so every element is single-quoted (the only quoting
 * in which sh gives no character a special meaning) and each `'` becomes `'\''` (close the quote,
 * an escaped quote, reopen). Nothing a user typed is ever parsed as shell syntax.
 *
 * Throws on an empty argv (there is nothing to run) and on NUL bytes, which no command line can
 * carry: sh would silently cut the argument there.
 */
export function shellQuote(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('cannot build a command line from an empty argv');
  return argv
    .map((argument, index) => {
      if (argument.includes('\0'))
        throw new Error(`argv[${index}] contains a NUL byte, which a command line cannot carry`);
      return `'${argument.replaceAll("'", `'\\''`)}'`;
    })
    .join(' ');
}
