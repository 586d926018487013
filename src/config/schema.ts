import { z } from 'zod';
import { addressProblem, cidrProblem, CONTROL_CHAR, expected, pathProblem } from './messages.js';
import { SIZING_PROFILES, STORAGE_KINDS } from './sizing.js';
import { alertingSchema } from './alerting.js';

/**
 * The inventory: one YAML file describing the cluster. Everything has a
 * default, so the minimal file is a cluster name and three hosts. Objects are
 * strict: an unknown key is an error, because a typo that passes silently
 * (`synchronous_mod: true`) is a production incident later.
 */

export const ROLES = ['postgres', 'etcd', 'haproxy', 'pgbouncer', 'monitoring', 'backup'] as const;
export type Role = (typeof ROLES)[number];

const IPV4_PATTERN = '^(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}$';

const ipv4 = z
  .string()
  .superRefine((v, ctx) => {
    const p = addressProblem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p, input: v });
  })
  .meta({ pattern: IPV4_PATTERN, examples: ['10.0.0.11'] });
const hostname = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { error: expected('a short host name of lowercase letters, digits and dashes, such as db1') });
export const cidr = z
  .string()
  .superRefine((v, ctx) => {
    const p = cidrProblem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p, input: v });
  })
  .meta({ pattern: `${IPV4_PATTERN.slice(0, -1)}/([89]|[12]\\d|3[0-2])$`, examples: ['10.0.0.0/24'] });
const port = z
  .number()
  .int()
  .min(1, { error: expected('a port number from 1 to 65535') })
  .max(65535, { error: expected('a port number from 1 to 65535') });
/**
 * Values are checked by what they are, not only by type: these strings reach
 * shell command lines, env files and config files on every host, as root.
 * A path is absolute, normalised and of a conservative alphabet (see
 * pathProblem), so it is plain text in every format it is rendered into.
 */
const PATH_PATTERN = '^(/[A-Za-z0-9._-]+)+$';
const checkedPath = (o: { home?: boolean; relative?: boolean } = {}) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const p = pathProblem(v, o);
      if (p) ctx.addIssue({ code: 'custom', message: p, input: v });
    })
    .meta({ pattern: o.relative ? '^(~/|/)?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$' : o.home ? '^~?(/[A-Za-z0-9._-]+)+$' : PATH_PATTERN });
const absPath = checkedPath();
/** The operator's own files on the machine dpgc runs on: `~/…` is expanded. */
const localPath = checkedPath({ home: true });
/** The operator's own files, where a relative path is relative to the inventory's directory (config/load.ts). */
const localFile = checkedPath({ home: true, relative: true });
/** An alert threshold age: `auto` (from the backup schedule) or a duration such as 90s, 30m, 26h, 8d. */
const alertAge = z.string().regex(/^(auto|[1-9]\d{0,6}[smhd])$/, { error: expected('auto, or a duration such as 90s, 30m, 26h or 8d') });

/** POSIX portable user names as useradd accepts them by default (no `$`, no leading digit or dash). */
const USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * A Docker image reference (distribution/reference grammar) pinned by tag or
 * digest: `[registry[:port]/]path[:tag][@digest]`, starting with a letter or digit.
 */
const IMAGE_DOMAIN_PART = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IMAGE_PATH_PART = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_NAME = `(?:${IMAGE_DOMAIN_PART}(?:\\.${IMAGE_DOMAIN_PART})*(?::[0-9]+)?/)?${IMAGE_PATH_PART}(?:/${IMAGE_PATH_PART})*`;
const IMAGE_TAG = ':[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const IMAGE_DIGEST = '@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
export const IMAGE_PATTERN = new RegExp(`^${IMAGE_NAME}(?:${IMAGE_TAG}(?:${IMAGE_DIGEST})?|${IMAGE_DIGEST})$`);

/** PostgreSQL's own names: lowercase, with a dot for extension settings (`pg_stat_statements.max`). */
export const SETTING_NAME_PATTERN = /^[a-z_][a-z0-9_.]{0,62}$/;
const settingValue = z.union([
  z.string().refine((v) => !CONTROL_CHAR.test(v), { error: expected('a value on one line, without control characters') }),
  z.number(),
  z.boolean(),
]);

const sshFields = {
  user: z.string().regex(USER_PATTERN, { error: expected('a user name of lowercase letters, digits, _ and -, starting with a letter or _, such as admin') }),
  port,
  /** Private key file; `~/` is expanded. */
  key: localPath,
  /** OpenSSH known_hosts file to verify host keys against. */
  known_hosts: localPath,
  /** Pinned host key fingerprints (`SHA256:…`), an alternative to known_hosts. */
  host_key_fingerprints: z.array(z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, { error: expected('an OpenSSH fingerprint as `ssh-keygen -lf` prints it: SHA256: and 43 characters') })),
  /** Use `sudo -n` for commands (a non-root user with passwordless sudo). */
  sudo: z.boolean(),
  connect_timeout_s: z.number().positive().max(300),
};

export const sshSchema = z
  .strictObject({
    ...sshFields,
    user: sshFields.user.default('root'),
    port: port.default(22),
    key: sshFields.key.optional(),
    known_hosts: sshFields.known_hosts.optional(),
    host_key_fingerprints: sshFields.host_key_fingerprints.optional(),
    sudo: sshFields.sudo.optional(),
    connect_timeout_s: sshFields.connect_timeout_s.default(10),
  })
  .prefault({});

/** A host's own ssh settings: no defaults here, so what it leaves out comes from `defaults.ssh`. */
const hostSshSchema = z.strictObject(sshFields).partial();

export const hostSchema = z.strictObject({
  name: hostname,
  address: ipv4,
  roles: z.array(z.enum(ROLES)).min(1, `give the host at least one role: ${ROLES.join(', ')}`),
  transport: z.enum(['local', 'ssh']).optional(),
  ssh: hostSshSchema.optional(),
  /** Prefix for every path dpgc manages on this host ('' on real hosts; a directory in the lab). */
  root: z.union([z.literal(''), absPath]).optional(),
  /** How daemons are run: systemd units, or supervised processes with pid files. */
  services: z.enum(['systemd', 'supervised']).optional(),
  /**
   * The operator's own server certificate for this host (PEM, optionally followed by its chain) and its
   * private key (mode 0600), on the machine dpgc runs on; relative paths are relative to the inventory.
   * Signed by the cluster's CA (`<inventory>.ca/ca.crt`), it is installed wherever dpgc would issue a
   * server certificate on this host (PostgreSQL, Patroni's REST API, PgBouncer, the metrics endpoints,
   * etcd) and never renewed by dpgc (components/host-certs.ts).
   */
  tls: z.strictObject({ cert: localFile, key: localFile }).optional(),
});

export const portsSchema = z
  .strictObject({
    postgres: port.default(5432),
    patroni: port.default(8008),
    etcd_client: port.default(2379),
    etcd_peer: port.default(2380),
    haproxy_primary: port.default(5000),
    haproxy_replicas: port.default(5001),
    haproxy_stats: port.default(8404),
    pgbouncer: port.default(6432),
    prometheus: port.default(9090),
    postgres_exporter: port.default(9187),
    node_exporter: port.default(9100),
    pgbouncer_exporter: port.default(9127),
    /** mtail on the database hosts: counts from PostgreSQL's log for the security alerts (sprint 5). */
    mtail: port.default(3903),
    grafana: port.default(3000),
    alertmanager: port.default(9093),
    /** pgBackRest's TLS server (`pgbackrest server`) on the database hosts and the repository host. */
    pgbackrest: port.default(8432),
    /** The scratch instance a point-in-time restore starts on the backup host (`dpgc restore --scratch`, the PITR drill). */
    restore_scratch: port.default(5439),
  })
  .prefault({});

export const TIMING_PROFILES = {
  // ttl, loop_wait, retry_timeout in seconds; HAProxy check interval (ms), fall, rise.
  // Patroni (3.0.3+, 4.x) will not run below ttl 20, retry_timeout 3, loop_wait 1 (it raises
  // smaller values silently: src/config/timings.ts), so every profile keeps ttl at 20: with etcd on
  // the PostgreSQL hosts a host death then costs ttl + etcd's leader loss (4 s) + the new primary's
  // promotion and routing, which a ttl above ~21 s would push past the default 30 s RTO budget.
  // Profiles differ in what they tolerate and how fast routing follows: `fast` checks HAProxy
  // every 500 ms, `balanced` every second, both riding out 6 s of etcd trouble; `safe` rides out
  // 9 s (loop_wait + 2 × retry_timeout = ttl) and needs 2 good checks before routing to a new
  // primary. With ttl pinned at 20 a shorter retry_timeout buys no failover time, only risk: `fast`
  // with 3 s let the loss of the etcd leader demote the primary in 2 of 5 drills on a loaded
  // machine (bench/failover/FINDINGS.md). Computed worst cases (etcd on the PostgreSQL hosts):
  // fast 28.125 s, balanced 28.25 s, safe 30 s. A crashed Patroni or postmaster on a live host is
  // restarted by the service manager and keeps its leader key: no failover at all. Measured
  // distributions in bench/failover/RESULTS.md.
  fast: { ttl: 20, loop_wait: 1, retry_timeout: 6, check_inter_ms: 500, check_fall: 2, check_rise: 1 },
  balanced: { ttl: 20, loop_wait: 1, retry_timeout: 6, check_inter_ms: 1000, check_fall: 2, check_rise: 1 },
  safe: { ttl: 20, loop_wait: 2, retry_timeout: 9, check_inter_ms: 2000, check_fall: 3, check_rise: 2 },
} as const;
export type TimingProfileName = keyof typeof TIMING_PROFILES;

export const timingsSchema = z
  .strictObject({
    profile: z.enum(['fast', 'balanced', 'safe']).default('balanced'),
    // Upper bounds: far above any sane setting, low enough that a slip of the keyboard (ttl: 99999999)
    // is refused instead of leaving a dead primary's leader lock in place for years.
    ttl: z.number().int().positive().max(300).optional(),
    loop_wait: z.number().int().positive().max(60).optional(),
    retry_timeout: z.number().int().positive().max(120).optional(),
    check_inter_ms: z.number().int().positive().max(60_000).optional(),
    check_fall: z.number().int().positive().max(20).optional(),
    check_rise: z.number().int().positive().max(20).optional(),
    /** The worst-case failover the settings allow must fit in this budget. */
    rto_budget_s: z.number().positive().max(3600).default(30),
  })
  .prefault({});

export const inventorySchema = z.strictObject({
  /** Cluster name: the Patroni scope and the pgBackRest stanza. */
  cluster: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, { error: expected('a cluster name of lowercase letters, digits, _ and -, starting with a letter, such as main') }),
  /** A lab inventory (one machine, loopback): drills need no typed confirmation. */
  lab: z.boolean().default(false),
  postgres: z
    .strictObject({
      version: z.literal([15, 16, 17]).default(15),
      vector: z.enum(['pgvector', 'ruvector']).default('pgvector'),
      /** Pinned image tag when ruvector is installed through Docker. */
      ruvector_image: z
        .string()
        .max(255)
        .regex(IMAGE_PATTERN, { error: expected('a Docker image pinned by tag or digest, such as ruvnet/ruvector-postgres:2.0.4') })
        .default('ruvnet/ruvector-postgres:2.0.4'),
      synchronous_commit: z.enum(['on', 'remote_apply', 'remote_write', 'local', 'off']).default('on'),
      synchronous_node_count: z.number().int().min(1).default(1),
      max_connections: z.number().int().min(20).default(200),
      /**
       * How memory, WAL and I/O settings are sized from each host's memory, CPUs and disk
       * (src/config/sizing.ts): `vector` (default: dpgc's schema is embeddings with HNSW indexes;
       * large index builds), `oltp` (short transactions), `small` (a host of a few GB shared with
       * other services). `settings` below always win.
       */
      profile: z
        .enum(SIZING_PROFILES, { error: expected(`one of ${SIZING_PROFILES.join(', ')} (how PostgreSQL is sized to its host)`) })
        .default('vector'),
      /** The data disk's kind, for random_page_cost and effective_io_concurrency: `auto` reads /sys/block (virtual disks often claim to rotate). */
      storage: z.enum(STORAGE_KINDS, { error: expected(`one of ${STORAGE_KINDS.join(', ')}`) }).default('auto'),
      /** The HNSW ef_search set on each application database (default: the benchmark's pick, bench/vector/RESULTS.md). */
      hnsw_ef_search: z.number({ error: expected('a whole number from 1 to 1000') }).int({ error: expected('a whole number from 1 to 1000') }).min(1, { error: expected('a whole number from 1 to 1000') }).max(1000, { error: expected('a whole number from 1 to 1000') }).optional(),
      /** Extra postgresql.conf settings. */
      settings: z
        .record(z.string().regex(SETTING_NAME_PATTERN, { error: expected('a PostgreSQL setting name of lowercase letters, digits, _ and ., such as work_mem') }), settingValue)
        .default({}),
    })
    .prefault({}),
  network: z
    .strictObject({
      /**
       * Networks allowed to connect to PostgreSQL, PgBouncer and Patroni (pg_hba).
       * Default: exactly the inventory's hosts (each address /32), the narrowest list a cluster works with.
       */
      allowed_cidrs: z.array(cidr).min(1, 'list at least one network, such as [10.0.0.0/24]').optional(),
    })
    .prefault({}),
  ports: portsSchema,
  timings: timingsSchema,
  packages: z
    .strictObject({
      /**
       * Where Patroni (and, with pgdg, PostgreSQL) comes from. `debian`: the release's own packages,
       * and on Debian 12 Patroni from Debian 13 (pinned: 3.0.2 lacks the leader-key fix). `pgdg`: the
       * PostgreSQL project's apt repository.
       */
      source: z.enum(['debian', 'pgdg']).default('debian'),
    })
    .prefault({}),
  patroni: z
    .strictObject({
      /**
       * Patroni's watchdog: a primary that hangs longer than ttl is reset by the kernel instead of
       * waking up as a primary later. `automatic` uses /dev/watchdog where it exists (dpgc loads
       * softdog on systemd hosts); `required` refuses leadership without one; `off` never uses it.
       */
      watchdog: z.enum(['off', 'automatic', 'required']).default('automatic'),
    })
    .prefault({}),
  pgbouncer: z
    .strictObject({
      pool_mode: z.enum(['transaction', 'session', 'statement']).default('transaction'),
      max_client_conn: z.number().int().positive().default(10000),
      default_pool_size: z.number().int().positive().default(25),
      reserve_pool_size: z.number().int().min(0).default(5),
      reserve_pool_timeout: z.number().min(0).default(3),
    })
    .prefault({}),
  // Only http(s): dpgc fetches this URL with the grafana_admin password (file:, ftp: and the like are refused).
  grafana: z.strictObject({ url: z.url({ protocol: /^https?$/, error: expected('an http:// or https:// URL such as http://10.0.0.10:3000') }).meta({ pattern: '^https?://' }).optional() }).prefault({}),
  alerting: alertingSchema,
  /**
   * `dpgc readiness`: how fresh the proofs must be, and the failing items an operator accepts for now.
   * A waiver names a check id, says why, and expires: an expired waiver fails like the item itself.
   */
  readiness: z
    .strictObject({
      drill_max_age_days: z.number().int().positive().default(30),
      disk_min_free_pct: z.number().min(1).max(90).default(15),
      waivers: z
        .array(
          z.strictObject({
            id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, { error: expected('a check id such as s3.patroni.watchdog (`dpgc readiness --json` lists them)') }),
            reason: z.string().trim().min(10, { error: expected('a reason of at least 10 characters: whoever reads the report must know why') }).refine((v) => !CONTROL_CHAR.test(v), { error: expected('one line of text') }),
            expires: z.iso.date({ error: expected('a date such as 2027-03-31 (YYYY-MM-DD)') }),
          }),
        )
        .default([]),
    })
    .prefault({}),
  backup: z
    .strictObject({
      repo_path: absPath.default('/var/lib/pgbackrest'),
      /** Full backups kept (pgBackRest repo1-retention-full); older ones and the WAL only they need are expired. */
      retention_full: z.number().int().min(1, { error: expected('at least 1 full backup to keep') }).max(100).default(2),
      /** Differential backups kept (repo1-retention-diff). */
      retention_diff: z.number().int().min(1, { error: expected('at least 1 differential backup to keep') }).max(100).default(6),
      /**
       * How often a scheduled backup runs: a systemd OnCalendar= expression on real hosts
       * (`daily`, `*-*-* 01:30:00`), or an interval (`90s`, `15m`, `6h`, `1d`), which is what the lab's
       * supervised loop runs (an OnCalendar expression there is refused: there is no systemd to read it).
       */
      schedule: z
        .string()
        .regex(/^[A-Za-z0-9*:.,/~ -]{1,64}$/, { error: expected('an interval such as 6h or 1d, or a systemd OnCalendar expression such as daily or *-*-* 01:30:00') })
        .default('1d'),
      /** Seconds after which PostgreSQL switches to a new WAL file even when idle: the RPO bound for a lost cluster. */
      archive_timeout: z.number().int().min(10, { error: expected('at least 10 seconds (each switch archives a 16 MB file)') }).max(3600).default(60),
      /**
       * Thresholds of the backup alerts (templates/prometheus/rules/backup.yml), exported beside the backup
       * metrics. `auto` derives an age from the schedule: the newest backup one period and a quarter old
       * (at least a minute more), the newest full one 7 periods (every 7th scheduled run is full) and a quarter.
       */
      alerts: z
        .strictObject({
          max_age: alertAge.default('auto'),
          full_max_age: alertAge.default('auto'),
          /** The repository's filesystem must keep at least this share free (percent). */
          repo_min_free_pct: z.number().min(1, { error: expected('a percentage from 1 to 99') }).max(99, { error: expected('a percentage from 1 to 99') }).default(15),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Defaults applied to every host that does not set its own. */
  defaults: z
    .strictObject({
      transport: z.enum(['local', 'ssh']).default('ssh'),
      ssh: sshSchema,
      root: z.union([z.literal(''), absPath]).default(''),
      services: z.enum(['systemd', 'supervised']).default('systemd'),
    })
    .prefault({}),
  hosts: z.array(hostSchema).min(1, 'list at least one host'),
});

export type InventoryInput = z.input<typeof inventorySchema>;
export type ParsedInventory = z.output<typeof inventorySchema>;
export type SshSettings = z.output<typeof sshSchema>;

/** A host with every default resolved. */
export interface HostSpec {
  name: string;
  address: string;
  roles: Role[];
  transport: 'local' | 'ssh';
  ssh: SshSettings;
  root: string;
  services: 'systemd' | 'supervised';
  /** The operator's own certificate and key (hosts[i].tls), absolute paths on the control machine. */
  tls?: { cert: string; key: string };
}

export interface Timings {
  ttl: number;
  loop_wait: number;
  retry_timeout: number;
  check_inter_ms: number;
  check_fall: number;
  check_rise: number;
  rto_budget_s: number;
  profile: TimingProfileName | 'custom';
}

export type Inventory = Omit<ParsedInventory, 'hosts' | 'timings' | 'network'> & {
  hosts: HostSpec[];
  timings: Timings;
  network: { allowed_cidrs: string[] };
  /** Absolute path of the file it came from. */
  file: string;
};
