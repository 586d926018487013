import { assertOwnedPath } from '../hosts/owned.js';
import { SETTING_NAME_PATTERN, type HostSpec, type Inventory } from '../config/schema.js';
import { CONTROL_CHAR } from '../config/messages.js';
import type { HostPaths } from '../config/paths.js';
import type { Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { ConfigError, HostError } from '../errors.js';
import type { ServiceSpec } from '../hosts/services.js';
import type { Host } from '../hosts/types.js';
import type { Node } from '../hosts/pool.js';
import { q, render } from '../templates.js';
import type { Sizing } from '../config/sizing.js';
import { dropAlterSystemOverrides } from './sizing.js';
import { ROLES_DB, superuserOn } from './endpoints.js';
import { waitUntil } from '../wait.js';

/**
 * PostgreSQL on a host: packages, the data directory, its configuration and
 * the service. postgresql.conf stays inside the data directory (initdb's
 * layout) and includes dpgc.conf beside it, because Patroni later takes over
 * this very directory (it renames postgresql.conf to postgresql.base.conf and
 * includes it), so everything dpgc configures must live in pgData.
 */
export const PG_SERVICE = 'postgresql';
export const DPGC_CONF = 'dpgc.conf';
const INCLUDE_LINE = `include '${DPGC_CONF}'`;

type Inv = Pick<Inventory, 'postgres' | 'ports' | 'network'>;

// ---------- packages ----------

const CREATECLUSTER_CONF = '/etc/postgresql-common/createcluster.conf';
/** apt waits for another apt (another host's task on a shared machine, unattended-upgrades) instead of failing. */

/**
 * Debian's postgresql-common creates and starts a `N/main` cluster on
 * localhost:5432 when a server package is installed, unless this is set first.
 */
export async function ensureCreateClusterDisabled(host: Host): Promise<boolean> {
  const cur = (await host.readFile(CREATECLUSTER_CONF)) ?? '';
  const next = withCreateClusterDisabled(cur);
  if (next === cur) return false;
  return (await host.writeFile(CREATECLUSTER_CONF, next, { mode: 0o644 })).changed;
}

/** The file with `create_main_cluster = false` as its effective setting (pure). */
export function withCreateClusterDisabled(text: string): string {
  const re = /^\s*create_main_cluster\s*=\s*(\S+)\s*$/gm;
  const settings = [...text.matchAll(re)];
  const last = settings[settings.length - 1];
  if (last && /^(false|off|no|0)$/i.test(last[1]!.replace(/['"]/g, ''))) return text;
  const kept = text.replace(re, (line) => `#${line.trimStart()}  # dpgc: disabled below`);
  return `${kept}${kept === '' || kept.endsWith('\n') ? '' : '\n'}# dpgc: never create a cluster on package install; dpgc initialises its own.\ncreate_main_cluster = false\n`;
}

/**
 * One statement through the member's own socket, as postgres (peer): no
 * password, no TLS, no pg_hba rule for TCP, so it works while any of those is
 * what is being repaired. Returns psql's unaligned output, trimmed.
 */
export async function localSql(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'host' | 'paths'>, sql: string): Promise<string> {
  const r = await node.host.exec([`${node.paths.pgBin}/psql`, '-X', '-q', '-At', '-h', node.paths.pgSocketDir, '-p', String(inv.ports.postgres), '-d', 'postgres', '-c', sql], { user: 'postgres' });
  return r.stdout.trim();
}

export function postgresPackages(version: number): string[] {
  return [`postgresql-${version}`];
}

/** What building an extension from source needs. */
export function extensionBuildPackages(version: number): string[] {
  return [`postgresql-server-dev-${version}`, 'build-essential', 'dpkg-dev'];
}

/** Debian's layout, fixed per major: valid before any -dev package is installed. */
export function pgDirs(version: number) {
  return { bin: `/usr/lib/postgresql/${version}/bin`, lib: `/usr/lib/postgresql/${version}/lib`, share: `/usr/share/postgresql/${version}` };
}

// ---------- configuration (pure rendering) ----------

export function confValue(v: string | number | boolean): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return q.pgconf(v);
}

/**
 * dpgc.conf: fixed settings, then the sizing (src/config/sizing.ts), whose
 * `inventory` entries are postgres.settings. Without a sizing (tests of
 * escaping) the inventory's settings alone.
 */
export function renderDpgcConf(inv: Inv, spec: Pick<HostSpec, 'address'>, paths: Pick<HostPaths, 'pgSocketDir'>, sizing?: Pick<Sizing, 'settings' | 'profile'>): string {
  const all = sizing?.settings ?? Object.entries(inv.postgres.settings).map(([name, value]) => ({ name, value, source: 'inventory' as const, why: '' }));
  // The schema already refused these; a renderer never trusts its caller with a file postgres reads as root's config.
  for (const [k, v] of all.map((s) => [s.name, s.value] as const)) {
    if (!SETTING_NAME_PATTERN.test(k)) throw new ConfigError(`postgres.settings: "${k}" is not a PostgreSQL setting name`);
    if (typeof v === 'string' && CONTROL_CHAR.test(v)) throw new ConfigError(`postgres.settings.${k}: the value must be one line without control characters`);
    if (typeof v === 'number' && !Number.isFinite(v)) throw new ConfigError(`postgres.settings.${k}: ${v} is not a number PostgreSQL reads`);
  }
  return render('postgresql/dpgc.conf.eta', {
    address: spec.address,
    port: inv.ports.postgres,
    socketDir: paths.pgSocketDir,
    maxConnections: inv.postgres.max_connections,
    profile: sizing?.profile,
    sized: all.filter((s) => s.source !== 'inventory').map((s) => ({ name: s.name, value: confValue(s.value), why: `${s.source}: ${s.why}`.replace(new RegExp(CONTROL_CHAR.source, 'gu'), ' ') })),
    settings: all.filter((s) => s.source === 'inventory').map((s) => ({ name: s.name, value: confValue(s.value) })),
  });
}

export function renderPgHba(inv: Pick<Inventory, 'network'>): string {
  return render('postgresql/pg_hba.conf.eta', { cidrs: inv.network.allowed_cidrs, replicationUser: ROLES_DB.replication.user });
}

/** initdb's postgresql.conf with the include of dpgc.conf appended once (pure). */
export function withDpgcInclude(conf: string): string {
  if (new RegExp(`^\\s*include\\s*=?\\s*'${DPGC_CONF}'`, 'm').test(conf)) return conf;
  return `${conf}${conf.endsWith('\n') ? '' : '\n'}\n# dpgc's settings (managed file, rewritten on every run). Last, so they win.\n${INCLUDE_LINE}\n`;
}

// ---------- the data directory ----------

export type DataDirState =
  | { kind: 'absent' | 'empty' }
  | { kind: 'ours'; version: string }
  | { kind: 'patroni'; version: string }
  | { kind: 'foreign'; reason: string };

/** Output of DATA_DIR_PROBE → what is there (pure, unit tested). */
export function classifyDataDir(probe: string, version: number): DataDirState {
  const lines = new Set(probe.trim().split('\n'));
  if (lines.has('absent')) return { kind: 'absent' };
  if (lines.has('empty')) return { kind: 'empty' };
  const v = [...lines].find((l) => l.startsWith('version '))?.slice(8);
  if (!v) return { kind: 'foreign', reason: 'it is not empty and holds no PostgreSQL cluster (no PG_VERSION)' };
  if (v !== String(version)) return { kind: 'foreign', reason: `it holds a PostgreSQL ${v} cluster, and the inventory asks for ${version}` };
  if (lines.has('patroni')) return { kind: 'patroni', version: v };
  if (lines.has('ours')) return { kind: 'ours', version: v };
  return { kind: 'foreign', reason: `it holds a PostgreSQL ${v} cluster that dpgc did not create (no ${DPGC_CONF} include)` };
}

const DATA_DIR_PROBE =
  'd="$1"; [ -e "$d" ] || { echo absent; exit 0; }; [ -n "$(ls -A -- "$d")" ] || { echo empty; exit 0; }; ' +
  '[ -f "$d/PG_VERSION" ] && echo "version $(cat -- "$d/PG_VERSION")"; ' +
  `grep -qs "^include '${DPGC_CONF}'" "$d/postgresql.conf" "$d/postgresql.base.conf" && echo ours; ` +
  '[ -f "$d/postgresql.base.conf" ] && echo patroni; exit 0';

/**
 * Once Patroni manages the instance (sprint 3) its settings and its starts
 * are Patroni's: sprint 0's own steps then leave them alone.
 */
export async function unlessPatroniManaged(node: Pick<Node, 'host' | 'paths'>, version: number, fn: () => Promise<{ changed: boolean; note?: string } | boolean>): Promise<{ changed: boolean; note?: string } | boolean> {
  if ((await dataDirState(node.host, node.paths, version)).kind === 'patroni') return { changed: false, note: 'managed by Patroni' };
  return fn();
}

export async function dataDirState(host: Host, paths: Pick<HostPaths, 'pgData'>, version: number): Promise<DataDirState> {
  // Why sh: several probes in one round trip; the directory is "$1" (DATA_DIR_PROBE splices in only the constant DPGC_CONF).
  const r = await host.exec(['sh', '-c', DATA_DIR_PROBE, 'sh', paths.pgData], { mutates: false });
  return classifyDataDir(r.stdout, version);
}

/** Directory with owner and mode, checked first so an unchanged one reports unchanged. */
export async function ensureDir(host: Host, path: string, owner: string, mode: number): Promise<boolean> {
  const want = `${mode.toString(8)} ${owner} ${owner}`;
  // Why sh: a test and a stat in one round trip; the path is "$1", never spliced in.
  const r = await host.exec(['sh', '-c', '[ -d "$1" ] && stat -c "%a %U %G" -- "$1" || true', 'sh', path], { mutates: false });
  if (r.stdout.trim() === want) return false;
  await host.exec(['install', '-d', '-o', owner, '-g', owner, '-m', mode.toString(8), path]);
  return true;
}

/** The data and socket directories, and proof that the postgres user can reach them. */
export async function prepareDirectories(node: Node): Promise<boolean> {
  const { host, paths } = node;
  let changed = false;
  // Parents are created when missing, never re-owned: on a real host they are Debian's.
  for (const dir of [paths.pgHome, paths.pgData.replace(/\/[^/]+$/, '')]) {
    if ((await host.exec(['test', '-d', dir], { mutates: false, allowFailure: true })).exitCode !== 0) changed = (await ensureDir(host, dir, 'postgres', 0o755)) || changed;
  }
  changed = (await ensureDir(host, paths.pgData, 'postgres', 0o700)) || changed;
  changed = (await ensureDir(host, paths.pgSocketDir, 'postgres', 0o2775)) || changed;
  if (!host.dryRun) {
    const r = await host.exec(['test', '-w', paths.pgData], { user: 'postgres', mutates: false, allowFailure: true });
    if (r.exitCode !== 0) {
      throw new HostError(`${host.name}: the postgres user cannot reach ${paths.pgData}: a parent directory is not searchable by others`, {
        hint: `Make every parent of ${paths.pgData} searchable (e.g. \`chmod o+x <dir>\`), then run again.`,
      });
    }
  }
  return changed;
}

/**
 * initdb exactly once. A non-empty directory is never initialised again: if
 * it holds our cluster nothing happens, anything else stops the run.
 */
export async function initCluster(node: Node, inv: Inv, secrets: Pick<Secrets, 'get'>, sizing: Sizing): Promise<{ changed: boolean; note?: string }> {
  const { host, paths } = node;
  const v = inv.postgres.version;
  const st = await dataDirState(host, paths, v);
  if (st.kind === 'ours') return { changed: false };
  if (st.kind === 'patroni') return { changed: false, note: 'managed by Patroni' };
  if (st.kind === 'foreign') {
    throw new HostError(`${host.name}: refusing to initialise ${paths.pgData}: ${st.reason}`, {
      hint: `dpgc never overwrites a database it did not create. Move the directory away (or drop that cluster, e.g. \`pg_dropcluster ${v} main\`, once you know it holds nothing you need), then run again.`,
    });
  }
  const pwfile = `${paths.pgHome}/.dpgc-initdb-pwfile`;
  await host.writeFile(pwfile, `${await secrets.get(ROLES_DB.superuser.secret)}\n`, { mode: 0o600, owner: 'postgres' });
  try {
    await host.exec(
      [
        `${paths.pgBin}/initdb`,
        '-D',
        paths.pgData,
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--data-checksums',
        '--auth-local=peer',
        '--auth-host=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C.UTF-8',
      ],
      { user: 'postgres', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C.UTF-8' }, timeoutMs: 300_000 },
    );
  } finally {
    await host.exec(['rm', '-f', assertOwnedPath(pwfile, [paths.pgHome], 'initdb password file')]);
  }
  // The include is written at once: a directory without it would read as "not ours" on the next run.
  await writeConfig(node, inv, sizing);
  return { changed: true, note: 'checksums, SCRAM' };
}

/**
 * dpgc.conf, the include in postgresql.conf, and pg_hba.conf, all inside
 * pgData; and no ALTER SYSTEM value of a setting dpgc sets (it would win).
 */
export async function writeConfig(node: Pick<Node, 'host' | 'paths' | 'spec'>, inv: Inv, sizing: Sizing): Promise<{ changed: boolean; note?: string }> {
  const { host, paths } = node;
  const own = { mode: 0o600, owner: 'postgres' };
  let changed = (await host.writeFile(`${paths.pgData}/${DPGC_CONF}`, renderDpgcConf(inv, node.spec, paths, sizing), own)).changed;
  const overrides = await dropAlterSystemOverrides(node, sizing.settings.map((s) => s.name));
  changed = overrides.changed || changed;
  changed = (await host.writeFile(`${paths.pgData}/pg_hba.conf`, renderPgHba(inv), own)).changed || changed;
  const conf = (await host.readFile(`${paths.pgData}/postgresql.conf`)) ?? '';
  changed = (await host.writeFile(`${paths.pgData}/postgresql.conf`, withDpgcInclude(conf), own)).changed || changed;
  return overrides.note ? { changed, note: overrides.note } : { changed };
}

// ---------- the service ----------

export function postgresService(node: Pick<Node, 'spec' | 'paths'>, inv: Pick<Inventory, 'ports'>): ServiceSpec {
  return {
    name: PG_SERVICE,
    user: 'postgres',
    argv: [`${node.paths.pgBin}/postgres`, '-D', node.paths.pgData],
    listen: { address: node.spec.address, port: inv.ports.postgres },
    env: { LC_ALL: 'C.UTF-8' },
    startTimeoutMs: 60_000,
    stopTimeoutMs: 120_000,
  };
}

/**
 * Stops the instance with a fast shutdown: a smart one (the service
 * manager's SIGTERM) waits for every client, and PgBouncer keeps its server
 * connections open for minutes, so it would not stop in time.
 */
export async function stopFast(node: Pick<Node, 'host' | 'paths' | 'services' | 'spec'>, inv: Pick<Inventory, 'ports'>): Promise<void> {
  const base = postgresService(node, inv);
  if ((await node.services.status(base)).running) {
    await node.host.exec([`${node.paths.pgBin}/pg_ctl`, 'stop', '-D', node.paths.pgData, '-m', 'fast', '-w', '-t', '120'], { user: 'postgres', timeoutMs: 150_000 });
  }
  await node.services.stop({ name: PG_SERVICE });
}

/**
 * Running, with the configuration on disk in effect: started when stopped;
 * reloaded when a config file is newer than the server's last load;
 * restarted only when PostgreSQL reports a setting pending restart.
 */
export async function ensureRunning(node: Node, inv: Inv, secrets: Pick<Secrets, 'get'>): Promise<{ changed: boolean; note?: string }> {
  const spec = postgresService(node, inv);
  const st = await node.services.status(spec);
  if (!st.running) {
    await node.services.start(spec);
    return { changed: true, note: 'started' };
  }
  if (node.host.dryRun) return { changed: false };
  const ep = superuserOn(inv, node.spec);
  const loadedAt = async () =>
    withClient(secrets, ep, async (c) => Number((await c.query<{ t: string }>('SELECT extract(epoch FROM pg_conf_load_time())::text AS t')).rows[0]!.t));
  const files = ['postgresql.conf', DPGC_CONF, 'pg_hba.conf', 'postgresql.auto.conf'].map((f) => `${node.paths.pgData}/${f}`);
  const mt = await node.host.exec(['stat', '-c', '%.9Y', ...files], { mutates: false });
  const newest = Math.max(...mt.stdout.trim().split('\n').map(Number));
  const before = await loadedAt();
  let note: string | undefined;
  if (newest > before) {
    await node.services.reload(spec);
    await waitUntil(async () => (await loadedAt()) > before, {
      timeoutMs: 15_000,
      everyMs: 200,
      timeoutError: () => new HostError(`${node.host.name}: PostgreSQL did not reload its configuration within 15 s of SIGHUP`),
    }, `PostgreSQL on ${node.host.name} reloading its configuration`);
    note = 'reloaded';
  }
  const pending = await withClient(secrets, ep, async (c) => (await c.query<{ name: string }>('SELECT name FROM pg_settings WHERE pending_restart ORDER BY 1')).rows.map((r) => r.name));
  if (pending.length) {
    await stopFast(node, inv);
    await node.services.start(spec);
    return { changed: true, note: `restarted for ${pending.join(', ')}` };
  }
  return note ? { changed: true, note } : { changed: false };
}
