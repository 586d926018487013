/**
 * Readers for the formats dpgc renders, written from each format's own rules,
 * so tests can assert that a rendered file gives back exactly the value put
 * in. Each one is strict: anything the real reader might interpret (an
 * unquoted `$`, a stray quote) is an error here, not a guess.
 */

/** One POSIX sh word: '…' literal, "…" with \\ \" \$ \` escapes, \x outside quotes; no expansion allowed. */
export function shWord(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === "'") {
      const end = src.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in ${JSON.stringify(src)}`);
      out += src.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        const d = src[i];
        if (d === undefined) throw new Error(`unterminated " in ${JSON.stringify(src)}`);
        if (d === '"') break;
        if (d === '$' || d === '`') throw new Error(`expansion inside "…" in ${JSON.stringify(src)}`);
        if (d === '\\' && '\\"$`'.includes(src[i + 1] ?? '')) {
          out += src[i + 1];
          i += 2;
          continue;
        }
        out += d;
        i++;
      }
      i++;
    } else if (c === '\\') {
      out += src[i + 1] ?? '';
      i += 2;
    } else if (/[\s$`;&|<>(){}*?[\]#~=%!]/.test(c)) {
      throw new Error(`unquoted ${JSON.stringify(c)} in ${JSON.stringify(src)}`);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** `KEY=word` lines of an env file (comments and blank lines skipped). A quoted value may span lines. */
export function parseShEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = text;
  while (rest.length) {
    const nl = rest.indexOf('\n');
    const line = nl < 0 ? rest : rest.slice(0, nl);
    if (line === '' || line.startsWith('#')) {
      rest = nl < 0 ? '' : rest.slice(nl + 1);
      continue;
    }
    const m = /^([A-Z_][A-Z0-9_]*)=/.exec(line);
    if (!m) throw new Error(`not an assignment: ${JSON.stringify(line)}`);
    // The word ends at the first newline outside quotes.
    let j = m[0].length;
    let quote: string | undefined;
    for (; j < rest.length; j++) {
      const c = rest[j]!;
      if (quote) {
        if (c === quote) quote = undefined;
        else if (quote === '"' && c === '\\') j++;
      } else if (c === "'" || c === '"') quote = c;
      else if (c === '\\') j++;
      else if (c === '\n') break;
    }
    out[m[1]!] = shWord(rest.slice(m[0].length, j));
    rest = rest.slice(j + 1);
  }
  return out;
}

/**
 * postgresql.conf as PostgreSQL's guc-file.l reads it: `name = value`, `#`
 * comments; a quoted value has '' for ' and the backslash escapes of
 * GUC_scanstr (\b \f \n \r \t, octal, any other character as itself).
 */
export function parsePgConf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*)$/.exec(line);
    if (!m) throw new Error(`not a setting: ${JSON.stringify(raw)}`);
    const v = m[2]!;
    if (v.startsWith("'")) {
      const q = /^'((?:[^'\\\n]|\\.|'')*)'\s*(#.*)?$/.exec(v);
      if (!q) throw new Error(`bad quoted value: ${JSON.stringify(raw)}`);
      out[m[1]!] = q[1]!.replace(/''|\\([0-7]{1,3}|.)/g, (s, e: string | undefined) => {
        if (s === "''") return "'";
        const esc: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (/^[0-7]+$/.test(e!)) return String.fromCharCode(parseInt(e!, 8));
        return esc[e!] ?? e!;
      });
    } else {
      const u = /^([^\s#']+)\s*(#.*)?$/.exec(v);
      if (!u) throw new Error(`bad unquoted value: ${JSON.stringify(raw)}`);
      out[m[1]!] = u[1]!;
    }
  }
  return out;
}

/** `[section]` and `key = value` lines (`;` and `#` comments), as PgBouncer reads its ini. */
export function parseIni(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const s = /^\[([^\]]+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      out[section] ??= {};
      continue;
    }
    const kv = /^([^=\s]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`not a key = value line: ${JSON.stringify(raw)}`);
    (out[section] ??= {})[kv[1]!] = kv[2]!;
  }
  return out;
}
