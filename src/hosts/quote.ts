/**
 * POSIX shell quoting for the one place argv must become a string (SSH: the
 * remote side runs a command line). Everything else passes argv arrays, and
 * `sh -c` scripts take their values as positional arguments, not by quoting.
 */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_\-+=/.,:@%^]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
