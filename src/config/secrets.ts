import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ConfigError } from '../errors.js';
import { registerSecret } from '../output/redact.js';

/**
 * Secrets live in `<inventory>.secrets.yaml` beside the inventory (mode 0600),
 * are generated on first need, can be supplied as DPGC_SECRET_<NAME>, and are
 * registered with the redactor the moment they are read.
 */
export const SECRET_NAMES = [
  'postgres_superuser', // the `postgres` role
  'replication', // `replicator`, streaming replication and base backups
  'rewind', // `rewind_user`, pg_rewind after failover
  'dpg_cluster', // owner of distributed_postgres_cluster
  'shared_user', // owner of claude_flow_shared
  'pgbouncer_admin', // PgBouncer admin/stats console user
  'monitoring', // `dpgc_monitor`, pg_monitor member used by exporters
  'patroni_rest', // Patroni REST API unsafe endpoints
  'haproxy_stats', // HAProxy stats page
] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

export function secretsPathFor(inventoryFile: string): string {
  const base = basename(inventoryFile).replace(/\.ya?ml$/, '');
  return join(dirname(inventoryFile), `${base}.secrets.yaml`);
}

export class Secrets {
  private cache: Partial<Record<SecretName, string>> | undefined;

  constructor(
    readonly file: string,
    private readonly opts: { dryRun?: boolean; env?: NodeJS.ProcessEnv } = {},
  ) {}

  /** The secret, from the environment, else the file, else newly generated and saved. */
  async get(name: SecretName): Promise<string> {
    const fromEnv = (this.opts.env ?? process.env)[`DPGC_SECRET_${name.toUpperCase()}`];
    if (fromEnv) {
      registerSecret(fromEnv);
      return fromEnv;
    }
    const all = await this.load();
    let v = all[name];
    if (!v) {
      // URL- and config-safe alphabet: these end up in YAML, ini and pgpass files.
      v = randomBytes(24).toString('base64url');
      all[name] = v;
      if (!this.opts.dryRun) await this.save(all);
    }
    registerSecret(v);
    return v;
  }

  /** Replace a secret (credential rotation). */
  async set(name: SecretName, value: string): Promise<void> {
    const all = await this.load();
    all[name] = value;
    registerSecret(value);
    if (!this.opts.dryRun) await this.save(all);
  }

  private async load(): Promise<Partial<Record<SecretName, string>>> {
    if (this.cache) return this.cache;
    let text: string | undefined;
    try {
      const st = await stat(this.file);
      if ((st.mode & 0o077) !== 0) {
        throw new ConfigError(`secrets file ${this.file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)})`, {
          hint: `Run \`chmod 600 ${this.file}\`, and rotate the secrets if others could have read them.`,
        });
      }
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read secrets file ${this.file}: ${String(e)}`);
    }
    let parsed: unknown = {};
    if (text !== undefined) {
      try {
        parsed = parse(text) ?? {};
      } catch {
        throw new ConfigError(`secrets file ${this.file} is not valid YAML`, { hint: 'Restore it from your backup; dpgc never prints secret values.' });
      }
      if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`secrets file ${this.file} must be a mapping of name: value`);
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        if (!(SECRET_NAMES as readonly string[]).includes(k)) {
          throw new ConfigError(`secrets file ${this.file}: unknown secret "${k}"`, { hint: `Known secrets: ${SECRET_NAMES.join(', ')}.` });
        }
        if (typeof v !== 'string' || v.length < 12) throw new ConfigError(`secrets file ${this.file}: ${k} must be a string of at least 12 characters`);
        registerSecret(v);
      }
    }
    this.cache = parsed as Partial<Record<SecretName, string>>;
    return this.cache;
  }

  private async save(all: Partial<Record<SecretName, string>>): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`# dpgc secrets: generated, mode 0600, never commit this file.\n${stringify(all)}`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
  }
}
