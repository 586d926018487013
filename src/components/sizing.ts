import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { efSearch, sizePostgres, sizingBasis, type HostFacts, type SizedSetting, type Sizing } from '../config/sizing.js';
import { withClient, type Client } from '../db/client.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import { waitUntil } from '../wait.js';
import { superuserOn } from './endpoints.js';
import { readHostFacts } from './preflight.js';
import { PGVECTOR_NAMES, quoteIdent } from './vector.js';

/**
 * PostgreSQL sized to its hosts, live: the facts read from every postgres
 * host, the settings src/config/sizing.ts derives from them, and what the
 * servers actually run with (pg_settings, units normalised) compared with it.
 */
type Inv = Pick<Inventory, 'hosts' | 'postgres'>;

/** Facts from every postgres host (concurrently, read-only), then the one sizing the cluster runs with. */
export async function clusterSizing(inv: Inv, pool: Pick<HostPool, 'node'>): Promise<Sizing & { facts: { name: string; facts: HostFacts }[] }> {
  const hosts = inv.hosts.filter((h) => h.roles.includes('postgres'));
  const facts = await Promise.all(
    hosts.map(async (h) => {
      const n = await pool.node(h.name);
      return { name: h.name, facts: await readHostFacts(n, n.paths.pgData) };
    }),
  );
  const sizing = sizePostgres(sizingBasis(facts, inv.postgres.storage), { profile: inv.postgres.profile, maxConnections: inv.postgres.max_connections, settings: inv.postgres.settings });
  return { ...sizing, facts };
}

/** Name → value, as postgresql.conf and Patroni's parameters take them. */
export function sizedParameters(s: Pick<Sizing, 'settings'>): Record<string, string | number> {
  return Object.fromEntries(s.settings.map((x) => [x.name, typeof x.value === 'boolean' ? (x.value ? 'on' : 'off') : x.value]));
}

// ---------------------------------------------------------------- comparing with pg_settings

/** A pg_settings row (or, for a placeholder no library defined yet, current_setting alone). */
export interface SettingRow {
  name: string;
  setting: string;
  unit: string | null;
  vartype: string;
  pending_restart: boolean;
  /** current_setting(name): the human form, `2008MB`. */
  shown: string;
}

const BYTES: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const MILLIS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** `8kB` → 8192 bytes, `s` → 1000 ms: the size of one unit of a pg_settings row. */
function unitSize(unit: string): { scale: number; kind: 'bytes' | 'ms' } | undefined {
  const m = /^(\d*)\s*([A-Za-z]+)$/.exec(unit);
  if (!m) return undefined;
  const n = m[1] ? Number(m[1]) : 1;
  if (BYTES[m[2]!] !== undefined) return { scale: n * BYTES[m[2]!]!, kind: 'bytes' };
  if (MILLIS[m[2]!] !== undefined) return { scale: n * MILLIS[m[2]!]!, kind: 'ms' };
  return undefined;
}

/** A value as PostgreSQL reads it (`2GB`, `512`, `30s`), in bytes or ms; a bare number is in the setting's own unit. */
function quantity(v: string | number, base: { scale: number; kind: 'bytes' | 'ms' }): number | undefined {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(String(v));
  if (!m) return undefined;
  if (!m[2]) return Number(m[1]) * base.scale;
  const table = base.kind === 'bytes' ? BYTES : MILLIS;
  const f = table[m[2]];
  return f === undefined ? undefined : Number(m[1]) * f;
}

const TRUE = new Set(['on', 'true', 'yes', '1', 't', 'y']);
const FALSE = new Set(['off', 'false', 'no', '0', 'f', 'n']);

/** Is `want` (as dpgc writes it) the value `row` holds? Units normalised; memory and time within one unit (PostgreSQL rounds). */
export function sameSetting(row: Pick<SettingRow, 'setting' | 'unit' | 'vartype'>, want: string | number | boolean): boolean {
  const have = row.setting.trim();
  if (row.vartype === 'bool') {
    const w = String(typeof want === 'boolean' ? (want ? 'on' : 'off') : want).toLowerCase().trim();
    return (TRUE.has(w) && TRUE.has(have.toLowerCase())) || (FALSE.has(w) && FALSE.has(have.toLowerCase()));
  }
  if (row.vartype === 'integer' || row.vartype === 'real') {
    const u = row.unit ? unitSize(row.unit) : undefined;
    if (u) {
      const w = quantity(want as string | number, u);
      return w !== undefined && Math.abs(w - Number(have) * u.scale) < u.scale;
    }
    const w = Number(want);
    return Number.isFinite(w) && Math.abs(w - Number(have)) <= 1e-9 * Math.max(1, Math.abs(w));
  }
  return String(want).trim().replace(/^'(.*)'$/, '$1').toLowerCase() === have.toLowerCase();
}

export interface SettingDrift {
  name: string;
  want: string;
  have: string;
  source: SizedSetting['source'];
  /** The server holds the wanted value in its files but runs the old one until restarted. */
  pendingRestart: boolean;
}

/** The wanted settings the server does not run with (pure). A name the server does not know is drift too. */
export function settingsDrift(rows: SettingRow[], wanted: SizedSetting[]): SettingDrift[] {
  const out: SettingDrift[] = [];
  for (const w of wanted) {
    const r = rows.find((x) => x.name === w.name);
    if (r && sameSetting(r, w.value)) continue;
    out.push({ name: w.name, want: String(w.value), have: r ? r.shown : '(unknown to the server)', source: w.source, pendingRestart: r?.pending_restart ?? false });
  }
  return out;
}

export function describeDrift(d: SettingDrift[]): string {
  return d.map((x) => `${x.name} is ${x.have}, dpgc computed ${x.want} (${x.source})${x.pendingRestart ? ', pending a restart' : ''}`).join('; ');
}

/** pg_settings for these names; a name only a not-yet-loaded library defines falls back to current_setting (a placeholder). */
export async function settingRows(c: Pick<Client, 'query'>, names: string[]): Promise<SettingRow[]> {
  const rows = (
    await c.query<SettingRow>(
      `SELECT name, setting, unit, vartype, pending_restart, current_setting(name) AS shown FROM pg_settings WHERE name = ANY($1::text[])`,
      [names],
    )
  ).rows;
  for (const n of names.filter((x) => !rows.some((r) => r.name === x) && x.includes('.'))) {
    const v = (await c.query<{ v: string | null }>('SELECT current_setting($1, true) AS v', [n])).rows[0]?.v;
    if (v !== null && v !== undefined) rows.push({ name: n, setting: v, unit: null, vartype: 'string', pending_restart: false, shown: v });
  }
  return rows;
}

/** What one server runs with, against what dpgc computed. */
export async function memberDrift(inv: Pick<Inventory, 'ports'>, secrets: Pick<Secrets, 'get'>, host: Pick<HostSpec, 'name' | 'address'>, wanted: SizedSetting[]): Promise<SettingDrift[]> {
  return withClient(secrets, superuserOn(inv, host), async (c) => settingsDrift(await settingRows(c, wanted.map((w) => w.name)), wanted));
}

// ---------------------------------------------------------------- ALTER SYSTEM

const AUTO_CONF = 'postgresql.auto.conf';

/** The setting a line of postgresql.auto.conf sets (lowercase); undefined for a comment or a blank line. */
function settingOf(line: string): string | undefined {
  if (line.trimStart().startsWith('#')) return undefined;
  return /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?/.exec(line)?.[1]?.toLowerCase();
}

/**
 * postgresql.auto.conf without the lines that set any of `names` (pure).
 * ALTER SYSTEM writes there and PostgreSQL reads it last, so a value set by
 * hand would silently beat dpgc's: dpgc's settings are dpgc's to set.
 */
export function withoutAutoSettings(text: string, names: string[]): { text: string; removed: string[] } {
  const removed: string[] = [];
  const kept = text.split('\n').filter((line) => {
    const name = settingOf(line);
    if (name && names.includes(name)) {
      removed.push(name);
      return false;
    }
    return true;
  });
  return { text: kept.join('\n'), removed };
}

/** Drops ALTER SYSTEM values of dpgc's settings from the data directory; the caller reloads. */
export async function dropAlterSystemOverrides(node: Pick<Node, 'host' | 'paths'>, names: string[]): Promise<{ changed: boolean; note?: string }> {
  const file = `${node.paths.pgData}/${AUTO_CONF}`;
  const cur = await node.host.readFile(file);
  if (cur === undefined) return { changed: false };
  const { text, removed } = withoutAutoSettings(cur, names);
  if (!removed.length) return { changed: false };
  await node.host.writeFile(file, text, { mode: 0o600, owner: 'postgres' });
  return { changed: true, note: `removed ALTER SYSTEM ${removed.join(', ')}` };
}

/** Pure: the settings postgresql.auto.conf sets (lowercase), comments left out. */
export function autoConfSettings(text: string): string[] {
  return [...new Set(text.split('\n').map(settingOf).filter((x): x is string => x !== undefined))];
}

/**
 * On a Patroni member: no ALTER SYSTEM value at all (sprint 5; the alert
 * PostgresSettingsChangedOutsideDpgc). PostgreSQL reads postgresql.auto.conf
 * after the postgresql.conf Patroni writes, so a value there beats the one
 * every other member runs with, unseen by Patroni; dpgc's settings come from
 * the inventory (postgres.settings). A value set by hand here goes, and the
 * server reloads.
 */
export async function dropAllAlterSystem(inv: Pick<Inventory, 'ports'>, secrets: Pick<Secrets, 'get'>, node: Node): Promise<{ changed: boolean; note?: string }> {
  const text = await node.host.readFile(`${node.paths.pgData}/${AUTO_CONF}`);
  return dropOverridesAndReload(inv, secrets, node, autoConfSettings(text ?? ''));
}

/** On a Patroni member: drop the overrides, then have the server reload (Patroni does not rewrite this file). */
export async function dropOverridesAndReload(inv: Pick<Inventory, 'ports'>, secrets: Pick<Secrets, 'get'>, node: Node, names: string[]): Promise<{ changed: boolean; note?: string }> {
  const r = await dropAlterSystemOverrides(node, names);
  if (r.changed && !node.host.dryRun) await withClient(secrets, superuserOn(inv, node.spec), (c) => c.query('SELECT pg_reload_conf()'));
  return r;
}

/**
 * After a change of Patroni's dynamic configuration: until every member has
 * loaded it, each wanted value either in force or waiting for a restart
 * (Patroni applies it on its next loop). Returns the members waiting for a restart.
 */
export async function waitForSettingsLoaded(inv: Pick<Inventory, 'ports' | 'hosts'>, secrets: Pick<Secrets, 'get'>, wanted: SizedSetting[], opts: { timeoutMs: number }): Promise<string[]> {
  const members = inv.hosts.filter((h) => h.roles.includes('postgres'));
  return waitUntil(
    async (seen) => {
      const drift = await Promise.all(members.map(async (m) => ({ m: m.name, d: await memberDrift(inv, secrets, m, wanted) })));
      const notYet = drift.filter((x) => x.d.some((d) => !d.pendingRestart));
      if (notYet.length) {
        seen(notYet.map((x) => `${x.m}: ${describeDrift(x.d.filter((d) => !d.pendingRestart))}`).join('; '));
        return undefined;
      }
      return drift.filter((x) => x.d.length).map((x) => x.m);
    },
    {
      timeoutMs: opts.timeoutMs,
      everyMs: 500,
      retryErrors: true,
      timeoutError: (t) => new HostError(`the members did not load dpgc's settings within ${opts.timeoutMs / 1000} s: ${t.lastSeen ?? 'no answer'}`, { hint: 'Read patroni.log on the members named: Patroni may have refused a parameter.' }),
    },
    'every member loading the new settings',
  );
}

// ---------------------------------------------------------------- HNSW ef_search per database

/** The database's own ef_search (ALTER DATABASE … SET; `guc` is the engine's name for it), or undefined. */
export async function databaseEfSearch(c: Pick<Client, 'query'>, db: string, guc: string): Promise<number | undefined> {
  const r = await c.query<{ v: string }>(
    `SELECT split_part(s, '=', 2) AS v FROM pg_db_role_setting d, unnest(d.setconfig) s
      WHERE d.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1) AND d.setrole = 0 AND split_part(s, '=', 1) = $2`,
    [db, guc],
  );
  const v = r.rows[0]?.v;
  return v === undefined ? undefined : Number(v);
}

/** ALTER DATABASE … SET <engine>.ef_search, when it differs. New sessions pick it up; PgBouncer's server connections on their next connect. */
export async function ensureEfSearch(c: Pick<Client, 'query'>, db: string, guc: string | undefined, pg: Inventory['postgres']): Promise<{ changed: boolean; note?: string }> {
  if (!guc) return { changed: false, note: 'this engine release has no ef_search setting' };
  const want = efSearch(pg, guc).value;
  const have = await databaseEfSearch(c, db, guc);
  if (have === want) return { changed: false };
  // The GUC name comes from the engine's catalog (vectorNames), quoted as an identifier path; the value is an integer.
  await c.query(`ALTER DATABASE ${quoteIdent(db)} SET ${guc.split('.').map(quoteIdent).join('.')} = ${Math.trunc(want)}`);
  return { changed: true, note: `${guc} ${have ?? 'unset'} → ${want}` };
}

// ---------------------------------------------------------------- for `dpgc status`

export interface SettingsView {
  /** The server the values were read from (the writable one). */
  host?: string;
  profile: string;
  /** What the sizing rests on, one line. */
  basis?: string;
  rows: { name: string; value: string; want: string; source: SizedSetting['source']; why: string; ok: boolean; pendingRestart: boolean }[];
  efSearch: { guc: string; value: number; source: SizedSetting['source'] };
  error?: string;
}

/** The key settings in force on the writable server, what dpgc computed, and where each came from. */
export async function settingsView(inv: Inventory, secrets: Pick<Secrets, 'get'>, pool: Pick<HostPool, 'node'>, host: () => Promise<Pick<HostSpec, 'name' | 'address'>>): Promise<SettingsView> {
  // The catalog names ruvector's setting; pgvector's is fixed.
  const guc = inv.postgres.vector === 'pgvector' ? PGVECTOR_NAMES.efSearchGuc : undefined;
  const ef = efSearch(inv.postgres, guc);
  const base: SettingsView = { profile: inv.postgres.profile, rows: [], efSearch: { guc: guc ?? 'ef_search', value: ef.value, source: ef.source } };
  try {
    const s = await clusterSizing(inv, pool);
    const b = s.basis;
    base.basis = `${b.sharedBy > 1 ? `${b.from}'s memory shared by ${b.sharedBy} postgres hosts` : `smallest host ${b.from}`}: ${(b.memoryBytes / 1024 ** 3).toFixed(1)} GiB per instance, ${b.cpus} CPU(s), ${b.ssd ? 'SSD' : 'not SSD'}`;
    const h = await host();
    base.host = h.name;
    const rows = await withClient(secrets, superuserOn(inv, h), (c) => settingRows(c, s.settings.map((x) => x.name)));
    base.rows = s.settings.map((w) => {
      const r = rows.find((x) => x.name === w.name);
      const d = settingsDrift(r ? [r] : [], [w])[0];
      return { name: w.name, value: r?.shown ?? '?', want: String(w.value), source: w.source, why: w.why, ok: !d, pendingRestart: d?.pendingRestart ?? false };
    });
  } catch (e) {
    base.error = (e as Error).message.split('\n')[0] ?? '';
  }
  return base;
}
