import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { inventorySchema, type HostSpec, type Inventory, type ParsedInventory, type Role } from './schema.js';
import { resolveTimings, validateTimings } from './timings.js';

/** Which services a role runs, so port clashes on one host can be found. */
const ROLE_PORTS: Record<Role, (keyof Inventory['ports'])[]> = {
  postgres: ['postgres', 'patroni', 'postgres_exporter'],
  etcd: ['etcd_client', 'etcd_peer'],
  haproxy: ['haproxy_primary', 'haproxy_replicas', 'haproxy_stats'],
  pgbouncer: ['pgbouncer', 'pgbouncer_exporter'],
  monitoring: ['prometheus', 'grafana'],
  backup: [],
};

export type ParseResult = { inventory: Inventory; issues: [] } | { inventory: undefined; issues: ConfigIssue[] };

/**
 * Parses and validates inventory text. Returns every problem found rather
 * than throwing on the first, each with file, line, column and field path.
 */
export function parseInventory(text: string, file: string): ParseResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return {};
    const p = lc.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (doc.errors.length) {
    return {
      inventory: undefined,
      issues: doc.errors.map((e) => ({ file, ...at(e.pos[0]), path: '', message: `YAML syntax: ${firstLine(e.message)}` })),
    };
  }
  const raw: unknown = doc.toJS() ?? {};
  const parsed = inventorySchema.safeParse(raw);
  if (!parsed.success) {
    return { inventory: undefined, issues: parsed.error.issues.map((i) => zodIssue(i, doc, file, at)) };
  }
  const inv = parsed.data;
  const issues = crossFieldIssues(inv).map((c) => ({ file, ...at(offsetOf(doc, c.path)), path: fmtPath(c.path), message: c.message }));
  if (issues.length) return { inventory: undefined, issues };
  return { inventory: resolveInventory(inv, file), issues: [] };
}

export async function loadInventory(path: string): Promise<Inventory> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(code === 'ENOENT' ? `inventory ${file} does not exist` : `cannot read inventory ${file}: ${code ?? String(e)}`, {
      hint: code === 'ENOENT' ? 'Pass --config <file>, set DPGC_CONFIG, or run `dpgc lab init` (one-machine lab) or `dpgc init`.' : undefined,
    } as { hint?: string });
  }
  const r = parseInventory(text, file);
  if (!r.inventory) {
    throw new ConfigError(`${file} is not a valid inventory (${r.issues.length} problem${r.issues.length === 1 ? '' : 's'}):`, {
      issues: r.issues,
      hint: 'Fix the fields named above; `dpgc schema` prints the JSON Schema for editor completion.',
    });
  }
  return r.inventory;
}

function resolveInventory(inv: ParsedInventory, file: string): Inventory {
  const d = inv.defaults;
  const hosts: HostSpec[] = inv.hosts.map((h) => ({
    name: h.name,
    address: h.address,
    roles: [...new Set(h.roles)],
    transport: h.transport ?? d.transport,
    ssh: { ...d.ssh, ...(h.ssh ?? {}) },
    root: h.root ?? d.root,
    services: h.services ?? d.services,
  }));
  return { ...inv, hosts, timings: resolveTimings(inv.timings), file };
}

type Path = (string | number)[];

function crossFieldIssues(inv: ParsedInventory): { path: Path; message: string }[] {
  const out: { path: Path; message: string }[] = [];
  const seen = new Map<string, number>();
  const seenAddr = new Map<string, number>();
  inv.hosts.forEach((h, i) => {
    const prev = seen.get(h.name);
    if (prev !== undefined) out.push({ path: ['hosts', i, 'name'], message: `duplicate host name "${h.name}" (also hosts[${prev}]); host names must be unique` });
    else seen.set(h.name, i);
    const prevA = seenAddr.get(h.address);
    if (prevA !== undefined) {
      out.push({ path: ['hosts', i, 'address'], message: `address ${h.address} is already used by hosts[${prevA}] (${inv.hosts[prevA]?.name}); each host needs its own address` });
    } else seenAddr.set(h.address, i);
    const ports = new Map<number, string>();
    for (const role of new Set(h.roles)) {
      for (const svc of ROLE_PORTS[role]) {
        const p = inv.ports[svc];
        const other = ports.get(p);
        if (other !== undefined && other !== svc) {
          out.push({ path: ['ports', svc], message: `port ${p} is used by both ${other} and ${svc} on host ${h.name}; give one of them another port` });
        }
        ports.set(p, svc);
      }
    }
  });
  const etcd = inv.hosts.filter((h) => h.roles.includes('etcd')).length;
  if (etcd > 0 && etcd % 2 === 0) {
    out.push({
      path: ['hosts'],
      message: `${etcd} hosts have the etcd role; etcd needs an odd number of members (3 or 5) so a majority survives a failure`,
    });
  }
  if (etcd > 7) out.push({ path: ['hosts'], message: `${etcd} etcd members: use 3 or 5; more slows every write and adds no useful tolerance` });
  const t = resolveTimings(inv.timings);
  for (const p of validateTimings(t)) out.push({ path: ['timings', p.field], message: p.message });
  return out;
}

function zodIssue(i: z.core.$ZodIssue, doc: Document, file: string, at: (o: number | undefined) => { line?: number; column?: number }): ConfigIssue {
  const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
  let message = i.message;
  let where = path;
  if (i.code === 'unrecognized_keys') {
    const key = i.keys[0] ?? '';
    where = [...path, key];
    message = `unknown key "${i.keys.join('", "')}"; check the spelling (\`dpgc schema\` lists every field)`;
  } else if (i.code === 'invalid_type') {
    const got = valueAt(doc, path);
    message = got === undefined ? `required field is missing (expected ${i.expected})` : `expected ${i.expected}, got ${describe(got)}`;
  } else if (i.code === 'invalid_value' && 'values' in i) {
    message = `expected one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(valueAt(doc, path))}`;
  }
  const offset = offsetOf(doc, where) ?? offsetOf(doc, path);
  return { file, ...at(offset), path: fmtPath(where), message };
}

function valueAt(doc: Document, path: Path): unknown {
  const n = doc.getIn(path, true) as { toJSON?: () => unknown } | undefined;
  return n && typeof n === 'object' && 'toJSON' in n && n.toJSON ? n.toJSON() : n;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Source offset of the node at `path`, walking up to the nearest ancestor that exists; keys point at the key. */
function offsetOf(doc: Document, path: Path): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const parentPath = path.slice(0, Math.max(0, n - 1));
    const last = path[n - 1];
    const parent = n === 0 ? doc.contents : doc.getIn(parentPath, true);
    if (n > 0 && isMap(parent)) {
      const pair = parent.items.find((it) => (it.key as { value?: unknown } | null)?.value === last);
      const range = (pair?.key as { range?: number[] } | undefined)?.range;
      if (range?.[0] !== undefined) return range[0];
    } else if (n > 0 && isSeq(parent) && typeof last === 'number') {
      const item = parent.items[last] as { range?: number[] } | undefined;
      if (item?.range?.[0] !== undefined) return item.range[0];
    } else if (n === 0) {
      return (parent as { range?: number[] } | null)?.range?.[0];
    }
  }
  return undefined;
}

export function fmtPath(path: Path): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** Roles each sprint needs at least one host for. */
export const SPRINT_ROLES: Record<number, Role[]> = {
  0: ['postgres'],
  1: ['postgres', 'pgbouncer', 'monitoring'],
  2: ['postgres', 'etcd', 'haproxy'],
  3: ['postgres', 'etcd', 'haproxy'],
  4: ['postgres', 'backup'],
  5: ['postgres'],
};

export function missingRoles(inv: Inventory, sprint: number): Role[] {
  return (SPRINT_ROLES[sprint] ?? []).filter((r) => !inv.hosts.some((h) => h.roles.includes(r)));
}
