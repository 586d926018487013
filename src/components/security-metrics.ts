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

/** The textfile of one host, from its TLS directory as it is now. */
export async function ensureCertMetrics(node: Node): Promise<{ changed: boolean; note?: string }> {
  const certs = await certificatesIn(node.host, node.paths.tlsDir);
  const dir = await ensureTextfileDir(node);
  const w = await node.host.writeFile(`${node.paths.textfileDir}/${CERT_TEXTFILE}`, renderCertMetrics(certs), { mode: 0o644, owner: 'root' });
  return w.changed || dir ? { changed: true, note: `${certs.length} certificates` } : { changed: false };
}
