/**
 * Environment files (`KEY=VALUE` lines, mode 0600) are how secrets reach
 * daemons. They are parsed here, as data, and never sourced by a shell:
 * sourcing ran whatever a value held (`$(…)`, backticks) as root.
 *
 * Accepted forms, one variable a line (blank lines and `#` comments skipped):
 *   KEY=literal rest of the line        (nothing in it is special)
 *   KEY='single quoted'                 (sh quoting; `'\''` stands for a quote)
 * Names must match NAME; anything else is an error naming the file and line,
 * so a malformed file stops the start instead of half-configuring a daemon.
 */
export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

export class EnvFileError extends Error {}

export function parseEnvFile(text: string, file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*(#|$)/.test(line)) return;
    const eq = line.indexOf('=');
    const key = eq === -1 ? line : line.slice(0, eq);
    const where = `${file}:${i + 1}`;
    if (eq === -1 || !ENV_NAME.test(key)) throw new EnvFileError(`${where}: not a KEY=VALUE line with KEY like ${ENV_NAME.source}`);
    const value = unquote(line.slice(eq + 1), where);
    // A NUL cannot be in an environment; it would cut the value short without a word.
    if (value.includes('\0')) throw new EnvFileError(`${where}: ${key} contains a NUL byte`);
    vars[key] = value;
  });
  return vars;
}

/** `'a'\''b'` → `a'b`; a value not starting with a quote is taken literally. */
function unquote(v: string, where: string): string {
  if (!v.startsWith("'")) return v;
  const m = /^'((?:[^']|'\\'')*)'$/.exec(v);
  if (!m) throw new EnvFileError(`${where}: a value starting with ' must be one single-quoted sh word ('\\'' for a quote inside)`);
  return m[1]!.replace(/'\\''/g, "'");
}
