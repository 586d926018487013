import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isMap, isScalar, stringify } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { registerSecret } from '../output/redact.js';
import { yamlIssue } from './issues.js';
import { closest, CONTROL_CHAR } from './messages.js';
import { YamlSource } from './source.js';
import { readPrivateFile } from './private-file.js';

/**
 * Secrets live in `<inventory>.secrets.yaml` beside the inventory (mode 0600),
 * are generated on first need, and are registered with the redactor the
 * moment they are read. Layering, highest first: `DPGC_SECRET_<NAME>` in the
 * environment (e.g. DPGC_SECRET_REPLICATION), then the file, then a newly
 * generated value saved to the file. No message ever contains a value.
 */
export const SECRET_NAMES = [
  'postgres_superuser', // the `postgres` role
  'replication', // `replicator`, streaming replication and base backups
  'rewind', // `rewind_user`, pg_rewind after failover
  'dpg_cluster', // owner of distributed_postgres_cluster
  'shared_user', // owner of claude_flow_shared
  'app_user', // `app_user`: applications read and write rows, no DDL (sprint 5)
  'readonly_user', // `readonly_user`: reads only (sprint 5)
  'pgbouncer_admin', // PgBouncer admin/stats console user
  'monitoring', // `dpgc_monitor`, pg_monitor member used by exporters
  'metrics_web', // `dpgc_metrics`: basic auth on every metrics endpoint (exporters, Prometheus, Alertmanager), sprint 5
  'patroni_rest', // Patroni REST API unsafe endpoints
  'haproxy_stats', // HAProxy stats page
  'pgbackrest_cipher', // pgBackRest repository encryption (repo1-cipher-pass): lose it and every backup is unreadable
  'grafana_admin', // Grafana's `admin` password, set by the operator: dpgc reads the API with it (only when grafana.url is set)
] as const;
/**
 * Credentials of the alert receivers (src/config/alerting.ts): one per receiver, named after it.
 * The operator sets them: dpgc never generates one (a random SMTP password reaches nobody), and
 * imposes no minimum length (the mail provider chose it).
 */
export type ReceiverSecretName = `receiver_${string}`;
export type SecretName = (typeof SECRET_NAMES)[number] | ReceiverSecretName;
const RECEIVER_SECRET = /^receiver_[a-z][a-z0-9_]{0,39}$/;
export const isReceiverSecret = (name: string): name is ReceiverSecretName => RECEIVER_SECRET.test(name);
const isSecretName = (name: string): name is SecretName => (SECRET_NAMES as readonly string[]).includes(name) || isReceiverSecret(name);
/**
 * A rotation's new value, recorded before anything changes (`dpgc rotate`,
 * src/components/rotation.ts): an interrupted rotation is completed with
 * the same value by the next run, and until then dpgc's own logins try it
 * first (db/client.ts). Only dpgc's generated secrets rotate.
 */
export type PendingName = `pending_${(typeof SECRET_NAMES)[number]}`;
const PENDING = 'pending_';
export const pendingName = (name: (typeof SECRET_NAMES)[number]): PendingName => `${PENDING}${name}`;
const isPendingName = (name: string): name is PendingName => name.startsWith(PENDING) && (SECRET_NAMES as readonly string[]).includes(name.slice(PENDING.length));
type Stored = Partial<Record<SecretName | PendingName, string>>;

/** Shorter than this is guessable; generated secrets are 32 characters. */
export const MIN_SECRET_LENGTH = 12;
const ENV_PREFIX = 'DPGC_SECRET_';

/** 32 characters of a URL- and config-safe alphabet: secrets end up in YAML, ini and pgpass files. */
const generate = (): string => randomBytes(24).toString('base64url');

export function secretsPathFor(inventoryFile: string): string {
  const base = basename(inventoryFile).replace(/\.ya?ml$/, '');
  return join(dirname(inventoryFile), `${base}.secrets.yaml`);
}

export interface SecretsOptions {
  dryRun?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * Whether this command may create secrets: only commands that set hosts up
   * (sprint, up) may. A read-only command (verify, status, pool-test, drills)
   * that generated a password would only report authentication failures.
   * Default true (library use and tests); the CLI always says.
   */
  mayCreate?: boolean;
  /**
   * Set when the cluster was already set up (its state file exists): a
   * missing secrets file then means lost passwords, not a first run.
   */
  clusterExists?: { because: string };
  /** The command running, for messages (`dpgc verify`). */
  command?: string;
  /** The cluster CA's certificate file (components/ca.ts caPathsFor), once there is one. */
  caCert?: string;
}

export class Secrets {
  // One load and one writer per instance: concurrent tasks asking for a new
  // secret at once must all get the same value, and saves must not interleave.
  private loaded: Promise<Stored> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private envChecked = false;
  /** Set by check() when the file is missing where it must exist: nothing may be generated. */
  private noFileAllowed = false;
  /** Read once found; looked for again until then (a sprint in this run may make it). */
  private ca: string | undefined;

  constructor(
    readonly file: string,
    private readonly opts: SecretsOptions = {},
  ) {}

  private get mayCreate(): boolean {
    return (this.opts.mayCreate ?? true) && !this.noFileAllowed;
  }

  /**
   * Validates the environment and the file (when there is one) up front, so
   * an unsafe or malformed secrets file stops a run before any host is touched,
   * and so does a missing one where it must exist.
   */
  async check(): Promise<void> {
    this.checkEnv();
    const text = await this.readSafely();
    const mustExist = this.opts.mayCreate === false || this.opts.clusterExists !== undefined;
    if (text === undefined && mustExist) {
      this.noFileAllowed = true;
      // Secrets passed in the environment instead of a file: each missing one is named when it is needed.
      const fromEnv = Object.keys(this.env()).some((k) => k.startsWith(ENV_PREFIX) && this.env()[k]);
      if (!fromEnv) throw this.missingFile();
    }
    await this.load();
  }

  /**
   * The cluster CA's certificate, which every connection dpgc makes checks a
   * server against (db/client.ts); undefined until a sprint has made the CA.
   * Public, but kept with the passwords: a client needs both to trust the
   * cluster and to be trusted by it.
   */
  async clusterCa(): Promise<string | undefined> {
    if (!this.opts.caCert) return undefined;
    this.ca ??= await readFile(this.opts.caCert, 'utf8').catch(() => undefined);
    return this.ca;
  }

  /** The secret, from the environment, else the file, else (where allowed) newly generated and saved. */
  async get(name: SecretName): Promise<string> {
    this.checkEnv();
    const fromEnv = this.env()[`${ENV_PREFIX}${name.toUpperCase()}`];
    if (fromEnv) {
      registerSecret(fromEnv);
      return fromEnv;
    }
    const all = await this.load();
    let v = all[name];
    if (!v) {
      // Another dpgc process may have generated secrets since this one read the file: merge
      // them in before generating, or saving would overwrite them with new values.
      await this.mergeFromDisk(all);
      v = all[name];
    }
    if (!v && isReceiverSecret(name)) throw this.missingReceiverSecret(name);
    // A generated Grafana password would not be Grafana's: every API check would only report a 401.
    if (!v && name === 'grafana_admin') throw this.missingGrafanaAdmin();
    if (!v && !this.mayCreate) throw this.missingSecret(name);
    if (!v) {
      v = generate();
      all[name] = v;
      if (!this.opts.dryRun) await this.save(all);
    }
    registerSecret(v);
    return v;
  }

  /** Another dpgc process may have written the file since this one read it: keep what it added. */
  private async mergeFromDisk(all: Stored): Promise<void> {
    const text = await this.readSafely();
    const onDisk = text === undefined ? {} : this.parse(text);
    for (const [k, val] of Object.entries(onDisk) as [keyof Stored, string][]) all[k] ??= val;
  }

  /** Replace a secret (credential rotation). */
  async set(name: SecretName, value: string): Promise<void> {
    const all = await this.load();
    all[name] = value;
    registerSecret(value);
    if (!this.opts.dryRun) await this.save(all);
  }

  /** The value a rotation of `name` is putting in place, when one was begun and not completed. */
  async pending(name: SecretName): Promise<string | undefined> {
    if (isReceiverSecret(name)) return undefined;
    return (await this.load())[pendingName(name)];
  }

  /** The secrets whose rotation was begun and not completed. */
  async pendingNames(): Promise<(typeof SECRET_NAMES)[number][]> {
    const all = await this.load();
    return SECRET_NAMES.filter((n) => all[pendingName(n)] !== undefined);
  }

  /**
   * The new value of a rotation, saved (fsync'd) as pending before the caller
   * changes anything: a run that is interrupted later is completed by the next
   * one with this same value. `resumed`: it was already pending.
   */
  async beginRotation(name: (typeof SECRET_NAMES)[number]): Promise<{ value: string; resumed: boolean }> {
    this.checkEnv();
    const env = `${ENV_PREFIX}${name.toUpperCase()}`;
    if (this.env()[env]) {
      throw new ConfigError(`${env} is set, so dpgc takes ${name} from the environment and cannot rotate it`, {
        hint: `Rotate it where ${env} comes from, or unset ${env} to let dpgc keep ${name} in ${this.file} and rotate it there.`,
      });
    }
    const all = await this.load();
    await this.mergeFromDisk(all);
    if (!all[name]) throw this.missingSecret(name);
    const key = pendingName(name);
    const had = all[key];
    if (had) return { value: had, resumed: true };
    const value = generate();
    all[key] = value;
    registerSecret(value);
    if (!this.opts.dryRun) await this.save(all);
    return { value, resumed: false };
  }

  /** The pending value becomes the secret; the old one is gone from the file. */
  async completeRotation(name: (typeof SECRET_NAMES)[number]): Promise<void> {
    const all = await this.load();
    const key = pendingName(name);
    const v = all[key];
    if (v === undefined) return;
    all[name] = v;
    delete all[key];
    if (!this.opts.dryRun) await this.save(all);
  }

  private env(): NodeJS.ProcessEnv {
    return this.opts.env ?? process.env;
  }

  /** A mistyped DPGC_SECRET_* would otherwise be ignored and a new secret generated: refuse it. */
  private checkEnv(): void {
    if (this.envChecked) return;
    const known = SECRET_NAMES.map((n) => `${ENV_PREFIX}${n.toUpperCase()}`);
    for (const [k, v] of Object.entries(this.env())) {
      if (!k.startsWith(ENV_PREFIX) || v === undefined || v === '') continue;
      if (!known.includes(k) && !isReceiverSecret(k.slice(ENV_PREFIX.length).toLowerCase())) {
        const near = closest(k, known.map((n) => n.toLowerCase()));
        throw new ConfigError(`environment variable ${k} names no secret dpgc knows${near ? `; did you mean ${near.toUpperCase()}?` : ''}`, {
          hint: `Unset it, or use one of: ${known.join(', ')}.`,
        });
      }
      if (v.length < MIN_SECRET_LENGTH && !isReceiverSecret(k.slice(ENV_PREFIX.length).toLowerCase())) {
        throw new ConfigError(`environment variable ${k} is ${v.length} characters long; a secret needs at least ${MIN_SECRET_LENGTH}`, {
          hint: `Use a longer value, or unset ${k} to have dpgc generate one (saved in ${this.file}).`,
        });
      }
      registerSecret(v);
    }
    this.envChecked = true;
  }

  private load(): Promise<Stored> {
    this.loaded ??= this.readSafely().then((text) => (text === undefined ? {} : this.parse(text)));
    // A failed load (bad mode, bad YAML) is retried next time rather than remembered.
    this.loaded.catch(() => (this.loaded = undefined));
    return this.loaded;
  }

  private why(): string {
    const cmd = this.opts.command ? `\`${this.opts.command}\`` : 'this command';
    if (this.opts.mayCreate === false) return `${cmd} only reads secrets and never creates them`;
    return `${this.opts.clusterExists?.because ?? 'the cluster was already set up'}, so new passwords would not match the ones it uses`;
  }

  private missingFile(): ConfigError {
    return new ConfigError(`secrets file ${this.file} does not exist, and ${this.why()}`, {
      hint:
        `Restore ${this.file} from where you keep it (a backup, the machine that set the cluster up), or pass every secret as ` +
        `DPGC_SECRET_<NAME> (${SECRET_NAMES.slice(0, 2).map((n) => `${ENV_PREFIX}${n.toUpperCase()}`).join(', ')}, …). ` +
        'For a new cluster, `dpgc sprint 0` (or `dpgc up`) creates it.',
    });
  }

  private missingReceiverSecret(name: ReceiverSecretName): ConfigError {
    const receiver = name.slice('receiver_'.length);
    return new ConfigError(`alert receiver ${receiver} needs its credential, and neither ${this.file} has "${name}" nor is ${ENV_PREFIX}${name.toUpperCase()} set`, {
      hint: `Add a line \`${name}: '…'\` to ${this.file} (mode 0600): the SMTP password for an email receiver, the bearer token for a webhook with token: true, the whole webhook URL for slack. dpgc never generates it.`,
    });
  }

  private missingGrafanaAdmin(): ConfigError {
    return new ConfigError(`grafana.url is set, so dpgc reads Grafana's API as admin, and neither ${this.file} has "grafana_admin" nor is ${ENV_PREFIX}GRAFANA_ADMIN set`, {
      hint: `Add a line \`grafana_admin: '…'\` to ${this.file} (mode 0600) with Grafana's admin password. dpgc never generates it.`,
    });
  }

  private missingSecret(name: SecretName): ConfigError {
    const where = this.noFileAllowed ? `is not set and there is no secrets file (${this.file})` : `is not set and ${this.file} has no "${name}"`;
    return new ConfigError(`${ENV_PREFIX}${name.toUpperCase()} ${where}; ${this.why()}`, {
      hint: `Pass ${ENV_PREFIX}${name.toUpperCase()}, or restore the secrets file${this.opts.mayCreate === false ? `; the sprint that sets up what uses it creates it` : ''}.`,
    });
  }

  /** The file's text; undefined when there is none yet (it is generated on first need). */
  private readSafely(): Promise<string | undefined> {
    return readPrivateFile(this.file, {
      label: `secrets file ${this.file}`,
      ownerRisk: 'its owner could change the passwords under you',
      exposed: 'and rotate the secrets if others could have read them.',
      directoryHint: `Move the directory away: dpgc keeps the secrets of ${basename(this.file).replace(/\.secrets\.yaml$/, '')} in that file, beside the inventory.`,
    });
  }

  private parse(text: string): Stored {
    const src = new YamlSource(text);
    const issues: ConfigIssue[] = [];
    const out: Stored = {};
    const firstError = src.errors[0];
    if (firstError) issues.push(yamlIssue(firstError, src, this.file));
    else if (src.doc.contents !== null && !isMap(src.doc.contents)) {
      issues.push({ file: this.file, ...src.at([]), path: '', message: 'expected a mapping of `name: value` lines' });
    } else if (isMap(src.doc.contents)) {
      for (const pair of src.doc.contents.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '';
        const v = isScalar(pair.value) ? pair.value.value : undefined;
        if (!isSecretName(key) && !isPendingName(key)) {
          const near = closest(key, SECRET_NAMES);
          issues.push({
            file: this.file,
            ...src.at([key], 'key'),
            path: key,
            message: `unknown secret "${key}"; ${near ? `did you mean "${near}"? ` : ''}known secrets: ${SECRET_NAMES.join(', ')}, receiver_<name> for each alert receiver, and pending_<name> for a rotation under way`,
          });
          continue;
        }
        if (isReceiverSecret(key) && (typeof v !== 'string' || !v || CONTROL_CHAR.test(v))) {
          issues.push({ file: this.file, ...src.at([key]), path: key, message: 'the value must be text on one line (quote it)' });
          continue;
        }
        if (typeof v !== 'string' || (v.length < MIN_SECRET_LENGTH && !isReceiverSecret(key))) {
          const what = typeof v === 'string' ? `is ${v.length} characters long` : 'is not text (quote it)';
          issues.push({
            file: this.file,
            ...src.at([key]),
            path: key,
            message: `the value ${what}; a secret needs at least ${MIN_SECRET_LENGTH} characters. Delete the line and dpgc generates a strong one`,
          });
          continue;
        }
        registerSecret(v);
        out[key] = v;
      }
    }
    if (issues.length) {
      throw new ConfigError(`secrets file ${this.file} is not valid (${issues.length} problem${issues.length === 1 ? '' : 's'}):`, {
        issues,
        hint: 'Fix the lines named above (dpgc never prints secret values). After changing a secret that is in use, rotate it on the cluster too.',
      });
    }
    return out;
  }

  private save(all: Stored): Promise<void> {
    const text = `# dpgc secrets: generated, mode 0600, never commit this file.\n${stringify(all)}`;
    const next = this.saving.then(() => this.write(text));
    this.saving = next.catch(() => undefined);
    return next;
  }

  private async write(text: string): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
  }
}
