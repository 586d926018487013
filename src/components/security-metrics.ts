import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Inventory } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { templateText } from '../templates.js';
import { auditParameters } from './audit.js';
import { certificatesIn, type CertInPlace } from './ca.js';
import { ensureExporter, ensureTextfileDir } from './exporters.js';

/**
 * The security metrics (sprint 5): Debian's mtail on every PostgreSQL host
 * reads PostgreSQL's own log files (audit logging, components/audit.ts) and
 * counts refused logins and superuser logins over TCP, for the alerts of
 * templates/prometheus/rules/security.yml.
 *
 * mtail (bookworm's 3.0.0~rc50, trixie's 3.0.9 alike) has no TLS and no
 * basic auth, and reads no exporter-toolkit web config: it listens on the
 * host's own address only, Prometheus scrapes it in plaintext, and the
 * firewall admits it like the other exporters' ports. What it serves is
 * three counters, no names or addresses. It runs as postgres, the only user
 * that can read the log files (mode 0600 in the data directory).
 *
 * mtail tails only the files that match its glob when it starts: the log's
 * files (one per weekday) are made empty beforehand when missing, so the
 * day a new one begins it is already tailed.
 */
export const MTAIL_PROGRAM = 'dpgc-postgresql.mtail';
const PG_USER = 'postgres';
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

export function mtailFiles(node: Pick<Node, 'paths'>) {
  return { dir: node.paths.mtailDir, program: `${node.paths.mtailDir}/${MTAIL_PROGRAM}` };
}

/** The mtail program: fixed text (dpgc's superuser is always `postgres`, ROLES_DB in endpoints.ts; a unit test holds the two together). */
export const mtailProgram = (): string => templateText('mtail/postgresql.mtail');

/**
 * Pure: every file PostgreSQL's log can be written to, and the glob that
 * matches them, from log_directory and log_filename as audit logging sets
 * them. Only a weekday (`%a`) may vary in the name: any other escape makes
 * files mtail, started before them, would never read.
 */
export function pgLogFiles(inv: Pick<Inventory, 'postgres' | 'file'>, node: Pick<Node, 'paths'>): { files: string[]; glob: string } {
  const p = auditParameters(inv.postgres);
  const dir = String(p['log_directory']);
  const name = String(p['log_filename']);
  const base = posix.isAbsolute(dir) ? dir : `${node.paths.pgData}/${dir}`;
  if (/%[^a]/.test(name.replace(/%%/g, ''))) {
    throw new ConfigError(`${inv.file}: postgres.settings.log_filename ${JSON.stringify(name)} varies by more than the weekday (%a): the security metrics (mtail) can follow only a fixed set of log files`, {
      hint: "Leave log_filename out (dpgc's default is postgresql-%a.log), or use only %a in it.",
    });
  }
  const literal = name.replace(/%%/g, '%');
  const files = name.includes('%a') ? WEEKDAYS.map((d) => `${base}/${name.replace(/%a/g, d).replace(/%%/g, '%')}`) : [`${base}/${literal}`];
  return { files, glob: `${base}/${name.replace(/%a/g, '*').replace(/%%/g, '%')}` };
}

export function mtailService(inv: Pick<Inventory, 'ports' | 'postgres' | 'file'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  return {
    name: 'mtail',
    user: PG_USER,
    argv: [
      '/usr/bin/mtail',
      `-progs=${mtailFiles(node).dir}`,
      `-logs=${pgLogFiles(inv, node).glob}`,
      `-address=${node.spec.address}`,
      `-port=${inv.ports.mtail}`,
      // Its own log goes to the service manager's, not to files in /tmp.
      '-logtostderr',
      '-emit_prog_label=false',
    ],
    listen: { address: node.spec.address, port: inv.ports.mtail },
  };
}

/** The log files mtail must find at its start, made empty (postgres's, 0600) when missing; an existing one is never touched. */
async function ensureLogFiles(inv: Pick<Inventory, 'postgres' | 'file'>, node: Node): Promise<boolean> {
  const { files } = pgLogFiles(inv, node);
  // Why sh: one round trip; the paths are "$@", never spliced in.
  const r = await node.host.exec(['sh', '-c', 'for f; do [ -e "$f" ] || echo "$f"; done', 'sh', ...files], { mutates: false });
  const missing = r.stdout.split('\n').filter(Boolean);
  if (!missing.length) return false;
  await node.host.exec(['sh', '-c', 'd=$1; shift; install -d -o postgres -g postgres -m 700 -- "$d" && for f; do [ -e "$f" ] || install -o postgres -g postgres -m 600 /dev/null "$f"; done', 'sh', posix.dirname(missing[0]!), ...missing]);
  return true;
}

/** mtail on a PostgreSQL host: its program, the log files it follows, its service (restarted when the program changes: mtail has no reload dpgc uses). */
export async function ensureMtail(inv: Pick<Inventory, 'ports' | 'postgres' | 'file'>, node: Node): Promise<{ changed: boolean; note?: string }> {
  const logs = await ensureLogFiles(inv, node);
  const f = mtailFiles(node);
  if ((await node.host.exec(['test', '-d', f.dir], { mutates: false, allowFailure: true })).exitCode !== 0) await node.host.exec(['install', '-d', '-m', '755', f.dir]);
  const r = await ensureExporter(node, mtailService(inv, node), [{ path: f.program, content: mtailProgram(), mode: 0o644 }]);
  return logs ? { changed: true, note: [r.note, 'log files made for mtail to follow'].filter(Boolean).join('; ') } : r;
}

/**
 * Certificate expiry for Prometheus: node_exporter's textfile collector
 * reads, on every host, when each certificate in dpgc's TLS directory ends
 * (PostgreSQL's, PgBouncer's, pgBackRest's, the metrics endpoints', the CA's
 * copy), as dpgc reads them from the files. Why not Debian's
 * blackbox_exporter: PostgreSQL's port starts TLS only after its own
 * SSLRequest message, which blackbox's TLS probe does not send, and a prober
 * sees only what answers on a port; the files cover every certificate dpgc
 * issues, with no daemon or port more. The file is rewritten by every
 * `dpgc sprint 5` (its last step); a certificate another sprint renews in
 * between shows its old end until then, which can only alert early, never
 * late. dpgc renews a certificate that has fewer than 30 days left
 * (ca.ts RENEW_BEFORE_DAYS) on any run: the alert at 30 days means no run
 * renewed it.
 */
export const CERT_TEXTFILE = 'dpgc-certificates.prom';

const labelValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Pure: the textfile's text; an unreadable certificate ends at 0 (alerts as expired). */
export function renderCertMetrics(certs: readonly Pick<CertInPlace, 'file' | 'cn' | 'notAfter'>[]): string {
  const lines = certs.map((c) => `dpgc_certificate_not_after_seconds{file="${labelValue(c.file)}",cn="${labelValue(c.cn ?? '')}"} ${c.notAfter ? Math.floor(c.notAfter.getTime() / 1000) : 0}`);
  return [
    '# HELP dpgc_certificate_not_after_seconds When each certificate in dpgc\'s TLS directory on this host ends (its notAfter), Unix time; 0 when unreadable.',
    '# TYPE dpgc_certificate_not_after_seconds gauge',
    ...lines,
    '',
  ].join('\n');
}

/** One of dpgc's files in node_exporter's textfile directory (made when missing); true when it changed. */
async function writeTextfile(node: Node, name: string, text: string): Promise<boolean> {
  const dir = await ensureTextfileDir(node);
  return (await node.host.writeFile(`${node.paths.textfileDir}/${name}`, text, { mode: 0o644, owner: 'root' })).changed || dir;
}

/** The textfile of one host, from its TLS directory as it is now. */
export async function ensureCertMetrics(node: Node): Promise<{ changed: boolean; note?: string }> {
  const certs = await certificatesIn(node.host, node.paths.tlsDir);
  return (await writeTextfile(node, CERT_TEXTFILE, renderCertMetrics(certs))) ? { changed: true, note: `${certs.length} certificates` } : { changed: false };
}

/**
 * pg_hba changed outside dpgc (the alert PostgresHbaChangedOutsideDpgc):
 * postgres_exporter reads a hash of the live rules on each member
 * (pg_local_config in templates/prometheus/postgres-exporter-queries.yml,
 * from pg_hba_file_rules: the file as it is on disk, reloaded or not), and
 * each member's node_exporter serves the hash of the rules dpgc rendered for
 * it. The second is written wherever dpgc decides the member's pg_hba
 * (Patroni's file, and the repair of a hand edit: components/patroni.ts),
 * from the rendered lines, never read back from the member: a re-run does
 * not bless a hand edit, it takes it out.
 *
 * Both sides hash the same text: one line per rule, its fields as
 * pg_hba_file_rules shows them (lists joined by commas, an address with its
 * prefix length), lines joined by newlines; the first 52 bits of its MD5, so
 * the hash is a float64 Prometheus holds exactly.
 */
export const HBA_TEXTFILE = 'dpgc-pg-hba.prom';

/** Pure: a rendered pg_hba rule as the exporter's query spells it (IPv4 with a prefix: dpgc's cidr type; keywords as written). */
export function canonicalHbaRule(line: string): string {
  const f = line.trim().split(/\s+/);
  const [type, db, user] = f;
  const rest = f.slice(3);
  if (type !== 'local' && rest.length) {
    const [addr, len] = rest[0]!.split('/');
    // PostgreSQL prints an address back through getnameinfo: 010.0.0.1 reads as 10.0.0.1.
    if (len !== undefined && /^\d+(\.\d+){3}$/.test(addr!)) rest[0] = `${addr!.split('.').map(Number).join('.')}/${Number(len)}`;
  }
  return [type, db, user, ...rest].join(' ');
}

/** Pure: the hash of rendered pg_hba rules, as the exporter's query computes it of the live ones. */
export function hbaHash(rules: readonly string[]): number {
  return parseInt(createHash('md5').update(rules.map(canonicalHbaRule).join('\n')).digest('hex').slice(0, 13), 16);
}

export function renderHbaMetric(rules: readonly string[]): string {
  return [
    '# HELP dpgc_pg_hba_rendered_hash Hash of the pg_hba rules dpgc rendered for this member (compare pg_local_config_hba_hash, the live rules).',
    '# TYPE dpgc_pg_hba_rendered_hash gauge',
    `dpgc_pg_hba_rendered_hash ${hbaHash(rules)}`,
    '',
  ].join('\n');
}

/** The member's expected pg_hba hash for Prometheus; true when it changed. */
export async function ensureHbaMetric(node: Node, rules: readonly string[]): Promise<boolean> {
  return writeTextfile(node, HBA_TEXTFILE, renderHbaMetric(rules));
}
