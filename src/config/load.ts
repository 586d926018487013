import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { expandHome } from '../hosts/known-hosts.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { operatorErrors, yamlIssue, zodIssues } from './issues.js';
import { inventoryRules } from './rules.js';
import { inventorySchema, type HostSpec, type Inventory, type ParsedInventory, type Role } from './schema.js';
import { fmtPath, YamlSource } from './source.js';
import { resolveTimings } from './timings.js';

export { fmtPath } from './source.js';

export type ParseResult = { inventory: Inventory; issues: [] } | { inventory: undefined; issues: ConfigIssue[] };

/** Aliases may expand this far: enough for any real inventory, far too little for a "billion laughs". */
const MAX_ALIAS_COUNT = 100;

/**
 * Parses and validates inventory text. Returns every problem found rather
 * than throwing on the first, each with file, line, column and field path,
 * sorted by position so they read top to bottom like the file.
 */
export function parseInventory(text: string, file: string): ParseResult {
  const issues = findIssues(text, file);
  if ('inventory' in issues) return { inventory: resolveInventory(issues.inventory, file), issues: [] };
  return { inventory: undefined, issues: issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)) };
}

function findIssues(text: string, file: string): ConfigIssue[] | { inventory: ParsedInventory } {
  const src = new YamlSource(text);
  // The first syntax error is the real one; the ones after it are mostly echoes.
  const first = src.errors[0] ?? src.doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
  if (first) return [yamlIssue(first, src, file)];
  if (src.doc.contents === null) {
    return [{ file, line: 1, column: 1, path: '', message: 'the file is empty; an inventory needs at least `cluster:` and `hosts:` (`dpgc lab init` writes a complete example)' }];
  }
  let raw: unknown;
  try {
    raw = src.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    return [{ file, ...src.at([]), path: '', message: `YAML aliases expand too far (${(e as Error).message}); write the values out instead of nesting *aliases` }];
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return [
      {
        file,
        ...src.at([]),
        path: '',
        message: `the inventory must be a mapping of keys (\`cluster: …\`, \`hosts: …\`), got ${Array.isArray(raw) ? 'a list' : `the value ${JSON.stringify(raw)}`}; \`dpgc lab init\` writes a complete example`,
      },
    ];
  }
  const parsed = inventorySchema.safeParse(raw, { error: operatorErrors });
  if (!parsed.success) return zodIssues(parsed.error.issues, src, file, inventorySchema);
  const problems = inventoryRules(parsed.data).map((p): ConfigIssue => {
    const path = p.paths.find((c) => src.has(c)) ?? p.paths[0] ?? [];
    return { file, ...src.at(path, p.at), path: fmtPath(path), message: p.message };
  });
  return problems.length ? problems : { inventory: parsed.data };
}

/**
 * Reads and validates the inventory. `DPGC_CONFIG` is resolved by the CLI
 * (src/cli/main.ts `globals`); the env is consulted here only to say where a
 * missing path came from.
 */
export async function loadInventory(path: string, env: NodeJS.ProcessEnv = process.env): Promise<Inventory> {
  const file = resolve(path);
  let text: string;
  try {
    // Looked at before it is opened: reading a FIFO (or a device) would wait forever, or never end.
    const st = await stat(file);
    if (st.isDirectory()) throw unreadable(file, 'EISDIR', env);
    if (!st.isFile()) throw notAFile(file, env);
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw unreadable(file, (e as NodeJS.ErrnoException).code, env);
  }
  const r = parseInventory(text, file);
  if (!r.inventory) {
    throw new ConfigError(`${file} is not a valid inventory (${r.issues.length} problem${r.issues.length === 1 ? '' : 's'}):`, {
      issues: r.issues,
      hint: 'Fix the lines named above; `dpgc schema` prints a JSON Schema your editor can check the file with.',
    });
  }
  return r.inventory;
}

function namedBy(file: string, env: NodeJS.ProcessEnv): string {
  return env['DPGC_CONFIG'] && resolve(env['DPGC_CONFIG']) === file ? ' (named by DPGC_CONFIG)' : '';
}

function notAFile(file: string, env: NodeJS.ProcessEnv): ConfigError {
  return new ConfigError(`inventory ${file}${namedBy(file, env)} is not a regular file (a pipe, socket or device); dpgc reads its inventory only from a file`, {
    hint: 'Write the inventory to a file and pass that with --config.',
  });
}

function unreadable(file: string, code: string | undefined, env: NodeJS.ProcessEnv): ConfigError {
  const fromEnv = namedBy(file, env);
  if (code === 'ENOENT') {
    return new ConfigError(`inventory ${file}${fromEnv} does not exist`, {
      hint: `Pass --config <file>${fromEnv ? ', fix or unset DPGC_CONFIG' : ', set DPGC_CONFIG'}, or create one: \`dpgc lab init\` (a whole cluster on this machine) or \`dpgc init\` (your hosts).`,
    });
  }
  if (code === 'EISDIR') return new ConfigError(`inventory ${file}${fromEnv} is a directory`, { hint: `Pass the file inside it, e.g. --config ${file}/dpgc.yaml.` });
  return new ConfigError(`cannot read inventory ${file}${fromEnv}: ${code ?? 'unknown error'}`, { hint: 'Check the file permissions.' });
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
    ...(h.tls ? { tls: { cert: localFile(h.tls.cert, file), key: localFile(h.tls.key, file) } } : {}),
  }));
  // Every host talks to PostgreSQL (replicas, PgBouncer, HAProxy, exporters, backups): by default
  // exactly they may, one /32 each.
  const allowed = inv.network.allowed_cidrs ?? [...new Set(hosts.map((h) => `${h.address}/32`))];
  return { ...inv, hosts, network: { allowed_cidrs: allowed }, timings: resolveTimings(inv.timings), file };
}

/** A file on the control machine named in the inventory: `~/…` from the home directory, a relative path from the inventory's. */
function localFile(p: string, inventoryFile: string): string {
  return p.startsWith('~/') ? expandHome(p) : resolve(dirname(inventoryFile), p);
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

export function missingRoles(inv: Pick<Inventory, 'hosts'>, sprint: number): Role[] {
  return (SPRINT_ROLES[sprint] ?? []).filter((r) => !inv.hosts.some((h) => h.roles.includes(r)));
}

/** How to add each role, for the error that names it. */
const ADD_ROLE: Record<Role, string> = {
  postgres: 'add postgres to the roles of your database hosts (three is the usual number)',
  etcd: 'add etcd to the roles of 3 (or 5) hosts, e.g. `roles: [postgres, etcd]` on each database host',
  haproxy: 'add haproxy to the roles of a host that clients can reach, e.g. a control host with `roles: [haproxy, pgbouncer, monitoring, backup]`',
  pgbouncer: 'add pgbouncer to the roles of the host clients connect to, e.g. the control host',
  monitoring: 'add monitoring to the roles of one host, e.g. the control host',
  backup: 'add backup to the roles of the host that keeps the pgBackRest repository, e.g. the control host',
};

/** Refuses, before anything touches a host, a sprint the inventory cannot support. */
export function assertRolesFor(inv: Pick<Inventory, 'hosts' | 'file'>, sprint: number): void {
  const missing = missingRoles(inv, sprint);
  if (!missing.length) return;
  throw new ConfigError(`${inv.file}: sprint ${sprint} needs a host with the role${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, and no host has ${missing.length > 1 ? 'them' : 'it'}`, {
    hint: `${missing.map((r) => `To fix: ${ADD_ROLE[r]}.`).join('\n')}\nRoles go under each host in \`hosts:\`; \`dpgc lab init\` writes a complete example.`,
  });
}
