import { posix } from 'node:path';

/**
 * Operator language for validation messages. Zod's defaults ("Too small:
 * expected number to be >=1") say what the code checked; an operator needs
 * what was expected, what was found, and how to write it instead.
 */

/** A value as the operator typed it: `the text "22"`, `a list`, `3.5`. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the text ${JSON.stringify(v)}`;
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : `a ${typeof v}`;
}

const NOUNS: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'text',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value lines)',
  record: 'a mapping (key: value lines)',
};

export function noun(expected: string): string {
  return NOUNS[expected] ?? expected;
}

/** What to write instead, for the common slips: quoted numbers, a single value where a list belongs. */
export function typeTip(expected: string, input: unknown): string {
  if ((expected === 'number' || expected === 'int') && typeof input === 'string' && /^-?\d+(\.\d+)?$/.test(input.trim())) {
    return `; write ${input.trim()} without quotes`;
  }
  if (expected === 'int' && typeof input === 'number') return `; use a whole number such as ${Math.round(input)}`;
  if (expected === 'boolean' && typeof input === 'string' && /^(true|false|yes|no|on|off)$/i.test(input)) {
    return '; write true or false without quotes';
  }
  if (expected === 'array' && (typeof input === 'string' || typeof input === 'number')) return `; write it as a list: [${input}]`;
  return '';
}

/** Builds a zod error function: `expected <what>, got <value>`. */
export function expected(what: string): (iss: { input?: unknown }) => string {
  return (iss) => `expected ${what}, got ${describe(iss.input)}`;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Why `s` is not a dotted-quad IPv4 address, in a few words, or undefined. */
function quadReason(s: string): string | undefined {
  const parts = s.split('.');
  if (parts.some((p) => !/^\d+$/.test(p))) return /[a-z]/i.test(s) ? 'dpgc needs the address itself, not a DNS name' : 'only digits and dots belong in it';
  if (parts.length !== 4) return `${s} has ${parts.length} part${parts.length === 1 ? '' : 's'}, not 4`;
  const big = parts.find((p) => Number(p) > 255);
  if (big !== undefined) return `${big} is above 255`;
  const lead = parts.find((p) => !OCTET.test(p));
  if (lead !== undefined) return `write ${lead} as ${Number(lead)}: a leading zero reads as octal to some tools`;
  return undefined;
}

/** Why `s` is not a usable host address, or undefined when it is. */
export function addressProblem(s: string): string | undefined {
  const got = `expected an IPv4 address such as 10.0.0.11, got ${describe(s)}`;
  const r = quadReason(s);
  if (r) return `${got}: ${r}`;
  if (s === '0.0.0.0' || s === '255.255.255.255') return `${got}: that is not one host's address; give the address the host is reached at`;
  return undefined;
}

/** Why `s` is not a usable CIDR, or undefined when it is. */
export function cidrProblem(s: string): string | undefined {
  const got = `expected a CIDR such as 10.0.0.0/24, got ${describe(s)}`;
  const slash = s.indexOf('/');
  if (slash < 0) return `${got}: the prefix length is missing; write ${s}/24 for a network, or ${s}/32 for one host`;
  const r = quadReason(s.slice(0, slash));
  if (r) return `${got}: ${r}`;
  const len = s.slice(slash + 1);
  if (!/^\d{1,2}$/.test(len) || Number(len) > 32) return `${got}: the prefix length /${len} is out of range; an IPv4 prefix is /1 to /32`;
  if (Number(len) === 0) return `${got}: /0 lets every address on the internet connect; list only your own networks`;
  if (Number(len) < MIN_CIDR_PREFIX) {
    return `${got}: /${len} spans ${(2 ** (32 - Number(len))).toLocaleString('en-US')} addresses, far more than any cluster's own networks; list only those (/${MIN_CIDR_PREFIX} or narrower)`;
  }
  return undefined;
}

/** A /8 is a whole private range (10.0.0.0/8) or loopback; anything wider takes in large parts of the internet. */
export const MIN_CIDR_PREFIX = 8;

/**
 * Letters, digits and `. _ - /`: every path dpgc writes into a config file or
 * a command line is plain in every format it reaches (sh, YAML, ini, HAProxy,
 * postgresql.conf), so no renderer has to be trusted to quote it right.
 */
const PATH_CHAR = /[A-Za-z0-9._/-]/;

/** Control, format and line-separator characters: invisible, and each one a line break or worse in some config format. */
export const CONTROL_CHAR = /[\p{C}\p{Zl}\p{Zp}]/u;

/**
 * Why `s` is not a path dpgc may use, or undefined. Absolute and normalised
 * (no `.` or `..` segment, no `//`, no trailing `/`); with `home`, `~/…` is
 * accepted too (the operator's own files, such as an SSH key); with
 * `relative`, a path relative to the inventory's directory too (`certs/db1.crt`).
 */
export function pathProblem(s: string, o: { home?: boolean; relative?: boolean } = {}): string | undefined {
  const example = o.relative ? 'certs/db1.crt, ~/pki/db1.crt or /etc/pki/db1.crt' : o.home ? '~/.ssh/id_ed25519 or /etc/dpgc/id_ed25519' : '/srv/dpgc';
  const got = `expected ${o.relative ? 'a path' : 'an absolute path'}${o.home ? ' or ~/…' : ''} such as ${example}, got ${describe(s)}`;
  if (CONTROL_CHAR.test(s)) return `${got}: it contains a control character (a newline, tab or the like)`;
  // A relative path is checked as if it hung from a root of its own: the same alphabet, no `..`.
  const rest = o.home && s.startsWith('~/') ? s.slice(1) : o.relative && s !== '' && !s.startsWith('/') && !s.startsWith('~') ? `/${s}` : s;
  if (!rest.startsWith('/')) {
    return o.home ? `${got}: start it with / or ~/` : `expected an absolute path starting with /, got ${describe(s)}`;
  }
  const bad = [...new Set([...rest].filter((c) => !PATH_CHAR.test(c)))];
  if (bad.length) {
    const tilde = o.home && bad.includes('~') ? ' (~ only at the start, as ~/)' : '';
    return `${got}: ${bad.map((c) => JSON.stringify(c)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not allowed${tilde}; use letters, digits, ., _, - and /`;
  }
  const segments = rest.split('/').slice(1);
  if (segments.includes('..')) return `${got}: a ".." segment is not allowed; write the directory it leads to`;
  if (rest === '/') return `${got}: the filesystem root itself is not a directory dpgc may manage`;
  if (segments.some((x) => x === '' || x === '.')) {
    const normal = `${o.home && s.startsWith('~/') ? '~' : ''}${posix.normalize(rest).replace(/\/$/, '')}`;
    return `${got}: write it normalised, as ${normal}`;
  }
  return undefined;
}

/** Edit distance counting a swap of neighbours as one edit (`etdc` → `etcd`), for "did you mean". */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known name closest to `typed`, if it is close enough to be a typo. */
export function closest(typed: string, known: readonly string[]): string | undefined {
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = distance(typed.toLowerCase(), k);
    if (!best || d < best.d) best = { k, d };
  }
  return best && best.d <= Math.max(1, Math.min(3, Math.floor(typed.length / 3))) ? best.k : undefined;
}
