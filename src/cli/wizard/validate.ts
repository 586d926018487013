import { isIP } from 'node:net';
import { stringify } from 'yaml';
import { fmtPath, parseInventory } from '../../config/load.js';
import type { InventoryInput } from '../../config/schema.js';
import type { Path } from '../../config/source.js';

/**
 * An answer is checked by the inventory's own schema and rules (one source of
 * truth): the value is placed into a minimal valid inventory at its key and
 * the whole thing is parsed; the problems reported for that key are the
 * answer's. A prompt, a flag and a hand-written file are told the same thing.
 */
const BASE: InventoryInput = { cluster: 'main', hosts: [{ name: 'h1', address: '10.0.0.1', roles: ['postgres'] }] };

export function fieldProblem(path: Path, value: unknown): string | undefined {
  const inv = structuredClone(BASE) as Record<string, unknown>;
  let at: Record<string | number, unknown> = inv;
  path.forEach((k, i) => {
    if (i === path.length - 1) at[k] = value;
    else at = (at[k] ??= typeof path[i + 1] === 'number' ? [] : {}) as Record<string | number, unknown>;
  });
  const r = parseInventory(stringify(inv), 'answer');
  const key = fmtPath(path);
  return r.issues.find((i) => i.path === key || i.path.startsWith(`${key}.`) || i.path.startsWith(`${key}[`))?.message;
}

/** A whole inventory built from answers: every problem, as `key: message`. */
export function inventoryProblems(inv: InventoryInput): string[] {
  const r = parseInventory(stringify(inv), 'answers');
  return r.issues.map((i) => `${i.path ? `${i.path}: ` : ''}${i.message}`);
}

/** RFC 1123 host names: dot-separated labels of letters, digits and inner dashes. */
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export type HostInput = { kind: 'ipv4'; address: string } | { kind: 'dns'; name: string };

/**
 * What the operator typed for a host: an IPv4 address (the schema's rules), a
 * DNS name (resolved when the host is probed), or why neither. IPv6 is
 * recognised and refused with the reason: every component dpgc renders
 * (listen addresses, pg_hba networks, etcd and Patroni URLs) takes IPv4.
 */
export function parseHostInput(v: string): HostInput | { problem: string } {
  const s = v.trim();
  if (!s) return { problem: 'give a host name or an IPv4 address' };
  if (isIP(s) === 6 || (s.startsWith('[') && s.endsWith(']'))) {
    return { problem: `${s} is an IPv6 address; dpgc configures every service on IPv4 today (listen addresses, pg_hba networks, etcd and Patroni URLs): give the host's IPv4 address, or a name that resolves to one` };
  }
  if (/^[\d.]+$/.test(s)) {
    const p = fieldProblem(['hosts', 0, 'address'], s);
    return p ? { problem: p } : { kind: 'ipv4', address: s };
  }
  if (DNS_NAME.test(s)) return { kind: 'dns', name: s.replace(/\.$/, '').toLowerCase() };
  return { problem: `expected a host name such as db1.example.com or an IPv4 address such as 10.0.0.11, got ${JSON.stringify(s)}` };
}
