import { z } from 'zod';
import { addressProblem, cidrProblem, expected } from './messages.js';

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
  .meta({ pattern: `${IPV4_PATTERN.slice(0, -1)}/([1-9]|[12]\\d|3[0-2])$`, examples: ['10.0.0.0/24'] });
const port = z
  .number()
  .int()
  .min(1, { error: expected('a port number from 1 to 65535') })
  .max(65535, { error: expected('a port number from 1 to 65535') });
const absPath = z.string().startsWith('/', { error: expected('an absolute path starting with /') });

const sshFields = {
  user: z.string().min(1),
  port,
  /** Private key file; `~` is expanded. */
  key: z.string(),
  /** OpenSSH known_hosts file to verify host keys against. */
  known_hosts: z.string(),
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
    grafana: port.default(3000),
  })
  .prefault({});

export const TIMING_PROFILES = {
  // ttl, loop_wait, retry_timeout in seconds; HAProxy check interval (ms), fall, rise.
  // Computed worst cases with etcd on the PostgreSQL hosts (src/config/timings.ts): fast 15.1 s,
  // balanced 18.25 s, safe 30 s (11.1 / 14.25 / 26 s with etcd elsewhere); measured
  // distributions in bench/failover/RESULTS.md. Every profile keeps retry_timeout ≥ 3 s so that losing
  // the etcd leader does not demote the primary (fast used 5/1/2 until a drill showed it did). `safe`
  // keeps the minimums newer Patroni releases enforce (ttl ≥ 20) and still fits the default 30 s RTO
  // budget; Patroni's own defaults (30/10/10) would allow a 48 s outage.
  fast: { ttl: 7, loop_wait: 1, retry_timeout: 3, check_inter_ms: 500, check_fall: 2, check_rise: 1 },
  balanced: { ttl: 10, loop_wait: 1, retry_timeout: 4, check_inter_ms: 1000, check_fall: 2, check_rise: 1 },
  safe: { ttl: 20, loop_wait: 2, retry_timeout: 8, check_inter_ms: 2000, check_fall: 3, check_rise: 2 },
} as const;
export type TimingProfileName = keyof typeof TIMING_PROFILES;

export const timingsSchema = z
  .strictObject({
    profile: z.enum(['fast', 'balanced', 'safe']).default('balanced'),
    ttl: z.number().int().positive().optional(),
    loop_wait: z.number().int().positive().optional(),
    retry_timeout: z.number().int().positive().optional(),
    check_inter_ms: z.number().int().positive().optional(),
    check_fall: z.number().int().positive().optional(),
    check_rise: z.number().int().positive().optional(),
    /** The worst-case failover the settings allow must fit in this budget. */
    rto_budget_s: z.number().positive().default(30),
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
      ruvector_image: z.string().default('ruvnet/ruvector-postgres:2.0.4'),
      synchronous_commit: z.enum(['on', 'remote_apply', 'remote_write', 'local', 'off']).default('on'),
      synchronous_node_count: z.number().int().min(1).default(1),
      max_connections: z.number().int().min(20).default(200),
      /** Extra postgresql.conf settings. */
      settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
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
  pgbouncer: z
    .strictObject({
      pool_mode: z.enum(['transaction', 'session', 'statement']).default('transaction'),
      max_client_conn: z.number().int().positive().default(10000),
      default_pool_size: z.number().int().positive().default(25),
      reserve_pool_size: z.number().int().min(0).default(5),
      reserve_pool_timeout: z.number().min(0).default(3),
    })
    .prefault({}),
  grafana: z.strictObject({ url: z.url().optional() }).prefault({}),
  backup: z
    .strictObject({
      repo_path: absPath.default('/var/lib/pgbackrest'),
      retention_full: z.number().int().positive().default(2),
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
