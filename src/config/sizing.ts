/**
 * PostgreSQL sized to its host (pure arithmetic, like timings.ts): from the
 * memory, CPU count and disk kind each postgres host reports in preflight,
 * and the inventory's `postgres.profile`, the server settings dpgc writes.
 * Explicit `postgres.settings` always win. Every value says where it came
 * from, so `dpgc status` and the settings criterion can explain themselves.
 *
 * The formulas follow the usual guidance (PostgreSQL's documentation,
 * pgtune, pgvector's README): shared_buffers a quarter of memory,
 * effective_cache_size three quarters, work_mem what is left spread over
 * every connection's sorts, maintenance_work_mem large enough for index
 * builds (HNSW builds are memory-bound: pgvector warns when the graph no
 * longer fits).
 */

export const SIZING_PROFILES = ['oltp', 'vector', 'small'] as const;
export type SizingProfile = (typeof SIZING_PROFILES)[number];
export const STORAGE_KINDS = ['auto', 'ssd', 'hdd'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** What a host reports (preflight.ts reads it through the host adapter). */
export interface HostFacts {
  /** MemTotal. */
  memoryBytes: number;
  cpus: number;
  /** The data directory's disk: true rotational, false SSD, undefined unknown. */
  rotational?: boolean | undefined;
  /**
   * The kernel's boot id: hosts reporting the same one are one machine (the
   * lab's hosts, containers on one VM), and divide its memory between them.
   */
  machine?: string | undefined;
  hugePagesTotal?: number | undefined;
}

/** The one set of facts the cluster is sized on. */
export interface SizingBasis {
  /** Memory for one PostgreSQL instance: its machine's memory divided between the postgres hosts on it. */
  memoryBytes: number;
  cpus: number;
  ssd: boolean;
  /** How the disk kind was decided, for the why of random_page_cost. */
  storage: string;
  /** The host the figures are from (the smallest), and how many postgres hosts share its machine. */
  from: string;
  sharedBy: number;
}

export type SettingSource = 'profile' | 'inventory' | 'default';

export interface SizedSetting {
  name: string;
  /** As written to postgresql.conf and Patroni's parameters. */
  value: string | number | boolean;
  source: SettingSource;
  /** One line: how the value was derived. */
  why: string;
}

export interface Sizing {
  profile: SizingProfile;
  basis: SizingBasis;
  settings: SizedSetting[];
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * Every member gets the same settings (Patroni's dynamic configuration is
 * cluster-wide, and a replica must be able to take the primary's load), so
 * the cluster is sized on its smallest host: the least memory per instance,
 * the fewest CPUs, and rotational when any disk is (or cannot be told).
 * Memory is divided between postgres hosts sharing one machine (committed,
 * resident); CPUs are not (time-shared: an idle neighbour leaves them free).
 */
export function sizingBasis(hosts: { name: string; facts: HostFacts }[], storage: StorageKind = 'auto'): SizingBasis {
  if (!hosts.length) throw new Error('sizingBasis: no postgres host');
  const perMachine = new Map<string, number>();
  for (const h of hosts) if (h.facts.machine) perMachine.set(h.facts.machine, (perMachine.get(h.facts.machine) ?? 0) + 1);
  const shares = hosts.map((h) => {
    const n = h.facts.machine ? perMachine.get(h.facts.machine)! : 1;
    return { h, n, memory: Math.floor(h.facts.memoryBytes / n) };
  });
  const smallest = shares.reduce((a, b) => (b.memory < a.memory ? b : a));
  const cpus = Math.max(1, Math.min(...hosts.map((h) => h.facts.cpus)));
  let ssd: boolean;
  let how: string;
  if (storage !== 'auto') {
    ssd = storage === 'ssd';
    how = `postgres.storage: ${storage}`;
  } else {
    const unknown = hosts.filter((h) => h.facts.rotational === undefined).map((h) => h.name);
    const spinning = hosts.filter((h) => h.facts.rotational === true).map((h) => h.name);
    ssd = !unknown.length && !spinning.length;
    how = ssd
      ? 'every data disk reports rotational 0'
      : spinning.length
        ? `rotational disk on ${spinning.join(', ')} (virtual disks often say so; set postgres.storage: ssd if it is one)`
        : `disk kind unknown on ${unknown.join(', ')}`;
  }
  return { memoryBytes: smallest.memory, cpus, ssd, storage: how, from: smallest.h.name, sharedBy: smallest.n };
}

/** Whole megabytes, never below `min`: readable in postgresql.conf and exact in 8 kB pages. */
function mb(bytes: number, min = 1 * MiB): number {
  return Math.max(min, Math.floor(bytes / MiB) * MiB);
}

/** `2GB` when whole gigabytes, else `NMB` (PostgreSQL's own unit words). */
export function formatBytes(bytes: number): string {
  if (bytes % GiB === 0) return `${bytes / GiB}GB`;
  if (bytes % MiB === 0) return `${bytes / MiB}MB`;
  return `${Math.round(bytes / KiB)}kB`;
}

export function humanBytes(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / MiB)} MiB`;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

interface ProfileRule {
  sharedBuffers: number; // fraction of memory
  cacheSize: number;
  maintenanceFraction: number;
  maintenanceMax: number;
  workers: (cpus: number) => number;
  maxWal: (mem: number) => number;
  minWal: number;
}

/**
 * oltp: many short transactions (pgtune's "OLTP"). vector: the same memory
 * split, but index builds get more (HNSW builds run in maintenance_work_mem,
 * in parallel since pgvector 0.6) and more WAL room (a build writes the
 * whole index). small: a host of a few GB shared with other services.
 */
const PROFILES: Record<SizingProfile, ProfileRule> = {
  oltp: {
    sharedBuffers: 0.25,
    cacheSize: 0.75,
    maintenanceFraction: 1 / 16,
    maintenanceMax: 2 * GiB,
    workers: (c) => clamp(Math.floor(c / 2), 0, 4),
    maxWal: (m) => (m >= 8 * GiB ? 8 * GiB : 4 * GiB),
    minWal: 1 * GiB,
  },
  vector: {
    sharedBuffers: 0.25,
    cacheSize: 0.75,
    maintenanceFraction: 1 / 8,
    maintenanceMax: 8 * GiB,
    // The leader process builds too: cpus - 1 workers keep every core busy and no more.
    workers: (c) => clamp(c - 1, 0, 8),
    maxWal: (m) => (m >= 8 * GiB ? 16 * GiB : 4 * GiB),
    minWal: 2 * GiB,
  },
  small: {
    sharedBuffers: 0.125,
    cacheSize: 0.5,
    maintenanceFraction: 1 / 32,
    maintenanceMax: 256 * MiB,
    workers: (c) => clamp(Math.floor(c / 2), 0, 1),
    // PostgreSQL's own defaults.
    maxWal: () => 1 * GiB,
    minWal: 80 * MiB,
  },
};

/** The settings dpgc derives; their names are what the settings criterion compares. */
export const SIZED_NAMES = [
  'shared_buffers',
  'effective_cache_size',
  'work_mem',
  'maintenance_work_mem',
  'max_parallel_maintenance_workers',
  'max_wal_size',
  'min_wal_size',
  'wal_compression',
  'checkpoint_completion_target',
  'random_page_cost',
  'effective_io_concurrency',
  'huge_pages',
] as const;

export interface SizingInput {
  profile: SizingProfile;
  maxConnections: number;
  /** `postgres.settings`: each one wins over the derived value of the same name. */
  settings: Record<string, string | number | boolean>;
}

export function sizePostgres(basis: SizingBasis, input: SizingInput): Sizing {
  const p = PROFILES[input.profile];
  const mem = basis.memoryBytes;
  const share = basis.sharedBy > 1 ? `${humanBytes(mem)} (${basis.from}'s memory / ${basis.sharedBy} postgres hosts on one machine)` : `${humanBytes(mem)} on ${basis.from}`;
  const pct = (f: number) => `${Math.round(f * 1000) / 10}%`;
  const sb = mb(mem * p.sharedBuffers, 32 * MiB);
  const cache = mb(mem * p.cacheSize, 64 * MiB);
  // Each connection may run a few sorts or hashes at once; the memory shared_buffers leaves is spread over all of them.
  const workMem = clamp(mb((mem - sb) / (input.maxConnections * 3)), 1 * MiB, 512 * MiB);
  const maint = clamp(mb(mem * p.maintenanceFraction), 64 * MiB, p.maintenanceMax);
  const workers = p.workers(basis.cpus);
  const maxWal = p.maxWal(mem);
  const derived: SizedSetting[] = [
    { name: 'shared_buffers', value: formatBytes(sb), source: 'profile', why: `${pct(p.sharedBuffers)} of ${share}` },
    { name: 'effective_cache_size', value: formatBytes(cache), source: 'profile', why: `${pct(p.cacheSize)} of ${share}` },
    { name: 'work_mem', value: formatBytes(workMem), source: 'profile', why: `(memory - shared_buffers) / (${input.maxConnections} connections x 3), 1MB..512MB` },
    { name: 'maintenance_work_mem', value: formatBytes(maint), source: 'profile', why: `1/${Math.round(1 / p.maintenanceFraction)} of memory, at most ${formatBytes(p.maintenanceMax)} (index builds)` },
    { name: 'max_parallel_maintenance_workers', value: workers, source: 'profile', why: `${basis.cpus} CPU(s) on the smallest host` },
    { name: 'max_wal_size', value: formatBytes(maxWal), source: 'profile', why: `${input.profile} profile, ${humanBytes(mem)} of memory` },
    { name: 'min_wal_size', value: formatBytes(p.minWal), source: 'profile', why: `${input.profile} profile` },
    { name: 'wal_compression', value: 'lz4', source: 'default', why: 'full-page images compressed at little CPU cost (PostgreSQL 15+)' },
    { name: 'checkpoint_completion_target', value: 0.9, source: 'default', why: 'spread checkpoint writes over the interval' },
    { name: 'random_page_cost', value: basis.ssd ? 1.1 : 4, source: 'profile', why: basis.ssd ? `SSD: ${basis.storage}` : `not known to be an SSD: ${basis.storage}` },
    { name: 'effective_io_concurrency', value: basis.ssd ? 200 : 2, source: 'profile', why: basis.ssd ? `SSD: ${basis.storage}` : `not known to be an SSD: ${basis.storage}` },
    { name: 'huge_pages', value: 'try', source: 'default', why: 'huge pages where the kernel has them reserved, normal pages otherwise' },
  ];
  const out = derived.map((s): SizedSetting => {
    const mine = input.settings[s.name];
    return mine === undefined ? s : { name: s.name, value: mine, source: 'inventory', why: `postgres.settings.${s.name} (dpgc would use ${String(s.value)})` };
  });
  for (const [name, value] of Object.entries(input.settings)) {
    if (!out.some((s) => s.name === name)) out.push({ name, value, source: 'inventory', why: `postgres.settings.${name}` });
  }
  return { profile: input.profile, basis, settings: out };
}

/**
 * The HNSW ef_search for each application database when the inventory names
 * none: the smallest value that met recall@10 >= 0.95 on bench/vector's
 * corpus (100,000 x 384, m=16, ef_construction=64; bench/vector/RESULTS.md).
 */
export const DEFAULT_EF_SEARCH = 100;

/**
 * ef_search per database: the engine's setting (`guc`, from vectorNames) under
 * postgres.settings, else `postgres.hnsw_ef_search`, else the default.
 */
export function efSearch(pg: { hnsw_ef_search?: number | undefined; settings: Record<string, string | number | boolean> }, guc?: string): { value: number; source: SettingSource; why: string } {
  const own = guc ? pg.settings[guc] : undefined;
  if (own !== undefined && Number.isInteger(Number(own))) return { value: Number(own), source: 'inventory', why: `postgres.settings['${guc}']` };
  if (pg.hnsw_ef_search !== undefined) return { value: pg.hnsw_ef_search, source: 'inventory', why: 'postgres.hnsw_ef_search' };
  return { value: DEFAULT_EF_SEARCH, source: 'default', why: 'smallest value with recall@10 >= 0.95 on bench/vector' };
}
