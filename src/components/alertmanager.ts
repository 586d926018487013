import { parse } from 'yaml';
import { NOBODY, receiverSecretName, type Receiver } from '../config/alerting.js';
import type { HostSpec, Inventory } from '../config/schema.js';
import { HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render, templateText } from '../templates.js';
import { installValidated, runValidator } from './config-file.js';
import { ensureExporter, restartReason, webReadsAtStart } from './exporters.js';
import { ensureGroupDir, ensureMetricsWeb, removeStrayFiles, metricsFiles, type MetricsCtx, type MetricsTlsChoice, type MetricsWeb } from './metrics-web.js';
import { ensureDir } from './pgbouncer.js';
import { webGet, webTarget, type WebTarget } from './web-client.js';

/**
 * Alertmanager on the monitoring host, beside Prometheus: the part that turns
 * a firing rule into a message someone reads. Receivers and routes come from
 * the inventory (src/config/alerting.ts). A receiver's credential reaches
 * Alertmanager only as a file it reads (`credentials_file`,
 * `auth_password_file`, `api_url_file`: mode 0640, root:prometheus), so it is
 * never in its configuration, its argv or its API's view of the config.
 */
export const ALERTMANAGER_USER = 'prometheus';
export { NOBODY };

export function alertmanagerFiles(paths: Pick<Node['paths'], 'prometheusDir' | 'alertmanagerData' | 'alertmanagerSecrets' | 'labAlerts' | 'libexecDir'>) {
  return {
    config: `${paths.prometheusDir}/alertmanager.yml`,
    data: paths.alertmanagerData,
    secretsDir: paths.alertmanagerSecrets,
    secret: (receiver: string) => `${paths.alertmanagerSecrets}/${receiver}`,
    labScript: `${paths.libexecDir}/lab-alert-receiver.py`,
    labDir: paths.labAlerts,
    /** One notification (Alertmanager's webhook JSON) per line, as the lab receiver got it. */
    labNotifications: `${paths.labAlerts}/notifications.jsonl`,
  };
}

/** Whether a receiver needs its secret: a webhook with a token, mail with a login, and every Slack webhook (its URL is the token). */
export function needsSecret(r: Receiver): boolean {
  return Boolean(r.slack || (r.webhook && r.webhook.token) || (r.email && r.email.username !== undefined));
}

type AlertmanagerPaths = Parameters<typeof alertmanagerFiles>[0];

export function renderAlertmanagerYml(inv: Pick<Inventory, 'cluster' | 'alerting'>, paths: AlertmanagerPaths): string {
  const a = inv.alerting;
  const f = alertmanagerFiles(paths);
  const root = a.receiver ?? NOBODY;
  const receivers = a.receivers.map((r) => ({ ...r, sendResolved: r.send_resolved, secretFile: needsSecret(r) ? f.secret(r.name) : undefined }));
  return render('alertmanager/alertmanager.yml.eta', {
    cluster: inv.cluster,
    root,
    groupBy: a.group_by,
    groupWait: a.group_wait,
    groupInterval: a.group_interval,
    repeatInterval: a.repeat_interval,
    routes: a.routes,
    receivers: root === NOBODY ? [...receivers, { name: NOBODY }] : receivers,
  });
}

/** Where Alertmanager listens on a monitoring host. */
export const alertmanagerAddress = (inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'address'>): string => `${host.address}:${inv.ports.alertmanager}`;

/** The Alertmanager dpgc reads (the first monitoring host's), as Prometheus is: https with `tls`, else http. */
export function alertmanagerTarget(inv: Pick<Inventory, 'hosts' | 'ports'>, tls: MetricsWeb | undefined): WebTarget {
  const m = inv.hosts.find((h) => h.roles.includes('monitoring'));
  if (!m) throw new HostError('no host has the monitoring role: there is no Alertmanager to ask', { hint: 'Give one host the monitoring role in the inventory.' });
  return webTarget(alertmanagerAddress(inv, m), tls);
}

/** `tls`: its web config serves TLS, so links in notifications say https. */
export function alertmanagerService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>, o: { tls?: boolean } = {}): ServiceSpec {
  const f = alertmanagerFiles(node.paths);
  const listen = alertmanagerAddress(inv, node.spec);
  return {
    name: 'alertmanager',
    user: ALERTMANAGER_USER,
    argv: [
      '/usr/bin/prometheus-alertmanager',
      `--config.file=${f.config}`,
      `--storage.path=${f.data}`,
      `--web.listen-address=${listen}`,
      // Always passed: the file says plaintext or TLS (components/metrics-web.ts).
      `--web.config.file=${metricsFiles(node.paths).webConfig}`,
      // Links in notifications point here rather than at the host's name.
      `--web.external-url=${o.tls ? 'https' : 'http'}://${listen}`,
      // One Alertmanager per monitoring host, no gossip: otherwise it binds 0.0.0.0:9094 on every host.
      '--cluster.listen-address=',
    ],
    listen: { address: node.spec.address, port: inv.ports.alertmanager },
  };
}

/**
 * The host's web config (components/metrics-web.ts), credential files (the
 * config names them and `amtool check-config` may read them), then the config
 * validated by amtool, then start, or restart when anything it reads at start
 * changed or it runs with other arguments. A restart rather than SIGHUP: SIGHUP returns
 * before the new config is in force, and the criteria measured right after
 * would read the old routes; a restart is confirmed by the port answering
 * with the new config. Nothing is lost: silences and the notification log are
 * on disk, and Prometheus re-sends firing alerts every evaluation. Credential
 * files of receivers no longer in the inventory are removed.
 */
export async function ensureAlertmanager(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice = {}): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const secrets = ctx.secrets;
  const f = alertmanagerFiles(node.paths);
  const web = await ensureMetricsWeb(ctx, node, o);
  let changed = false;
  const withSecret = inv.alerting.receivers.filter(needsSecret);
  // Every credential first: a missing one stops here, before any of Alertmanager's files changes.
  const values = await Promise.all(withSecret.map((r) => secrets.get(receiverSecretName(r.name))));
  if (withSecret.length || (await node.host.exec(['test', '-d', f.secretsDir], { mutates: false, allowFailure: true })).exitCode === 0) {
    // root-owned, group prometheus: Alertmanager can read its credentials, and nothing else can change them.
    changed = (await ensureGroupDir(node, f.secretsDir, ALERTMANAGER_USER)) || changed;
  }
  for (const [i, r] of withSecret.entries()) {
    changed = (await node.host.writeFile(f.secret(r.name), values[i]!, { mode: 0o640, owner: 'root', group: ALERTMANAGER_USER })).changed || changed;
  }
  // A credential of a receiver that was removed from the inventory has no business staying on the host.
  changed = (await removeStrayFiles(node, f.secretsDir, withSecret.map((r) => r.name), 'credential of a removed receiver')) || changed;
  const cfg = renderAlertmanagerYml(inv, node.paths);
  changed = (await installValidated(node.host, f.config, cfg, { mode: 0o644 }, (s) => runValidator(node.host, 'Alertmanager config', ['amtool', 'check-config', s]))).changed || changed;
  changed = (await ensureDir(node, f.data, ALERTMANAGER_USER, '750')) || changed;
  const spec = alertmanagerService(inv, node, { tls: web.tls !== undefined });
  const before = await node.services.status(spec);
  const note = (what: string) => (web.note ? `${web.note}; ${what}` : what);
  if (before.running && (changed || (await restartReason(node, before.pid, spec, [...webReadsAtStart(node), f.config])))) {
    await node.services.restart(spec);
    return { changed: true, note: note('restarted') };
  }
  const s = await node.services.start(spec);
  if (s.changed) return { changed: true, note: note('started') };
  return web.changed ? { changed: true, ...(web.note ? { note: web.note } : {}) } : { changed: false };
}


/** The lab's webhook receiver (templates/alertmanager/lab-receiver.py): a supervised process on the monitoring host. */
export function labReceiverService(inv: Pick<Inventory, 'alerting'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec | undefined {
  const lr = inv.alerting.lab_receiver;
  if (!lr) return undefined;
  const f = alertmanagerFiles(node.paths);
  return {
    name: 'lab-alert-receiver',
    user: ALERTMANAGER_USER,
    argv: ['/usr/bin/python3', f.labScript, node.spec.address, String(lr.port), f.labNotifications],
    listen: { address: node.spec.address, port: lr.port },
  };
}

export async function ensureLabReceiver(inv: Pick<Inventory, 'alerting'>, node: Node): Promise<{ changed: boolean; note?: string }> {
  const spec = labReceiverService(inv, node);
  if (!spec) return { changed: false };
  const f = alertmanagerFiles(node.paths);
  const dir = await ensureDir(node, f.labDir, ALERTMANAGER_USER, '755');
  const r = await ensureExporter(node, spec, [{ path: f.labScript, content: templateText('alertmanager/lab-receiver.py'), mode: 0o755 }]);
  return { ...r, changed: r.changed || dir };
}

/** Alertmanager's webhook payload, as much of it as dpgc reads. */
export interface Notification {
  receiver: string;
  status: 'firing' | 'resolved';
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string>; startsAt: string }[];
}

/** Every notification the lab receiver has written so far, oldest first. */
export async function labNotifications(node: Node): Promise<Notification[]> {
  const text = (await node.host.readFile(alertmanagerFiles(node.paths).labNotifications)) ?? '';
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { notification: Notification }).notification);
}

/** Alertmanager's HTTP API, bounded in time; a failure names the URL and what to do. */
export async function amGet<T>(am: WebTarget, path: string, timeoutMs = 10_000): Promise<T> {
  let res: Awaited<ReturnType<typeof webGet>>;
  try {
    res = await webGet(am, path, { timeoutMs });
  } catch (e) {
    throw new HostError(`Alertmanager at ${am.base} does not answer: ${(e as Error).message}`, {
      hint: 'Is the alertmanager service running on the monitoring host, serving as its web config says? `dpgc sprint 1` starts it (and keeps TLS on once sprint 5 turned it on).',
    });
  }
  if (res.status !== 200) throw new HostError(`Alertmanager ${path}: HTTP ${res.status}`);
  return JSON.parse(res.body) as T;
}

export interface LiveReceiver {
  name: string;
  /** The integrations it notifies (`webhook`, `email`, `slack`, …): none means it reaches nobody. */
  integrations: string[];
}

/** The receivers of the configuration Alertmanager runs now (not the file on disk, which may be newer or broken). */
export async function liveReceivers(base: WebTarget): Promise<LiveReceiver[]> {
  const status = await amGet<{ config: { original: string } }>(base, '/api/v2/status');
  const cfg = parse(status.config.original) as { receivers?: Record<string, unknown>[] } | null;
  return (cfg?.receivers ?? []).map((r) => ({
    name: String(r['name']),
    integrations: Object.entries(r)
      .filter(([k, v]) => k.endsWith('_configs') && Array.isArray(v) && v.length > 0)
      .map(([k]) => k.replace(/_configs$/, '')),
  }));
}

/**
 * The receivers Alertmanager's running route tree gives an alert with these
 * labels, as Alertmanager itself decides (`amtool config routes test` against
 * its API, on the monitoring host where amtool is installed): matching,
 * regexes and `continue` are Alertmanager's, not a re-implementation.
 */
export async function routedReceivers(node: Pick<Node, 'host' | 'paths'>, am: WebTarget, labels: Record<string, string>): Promise<string[]> {
  // Matcher syntax with the value double-quoted (JSON's escaping is the matcher parser's): any value is one argument.
  const args = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  // With TLS on, the CA and the password come from a file on the monitoring host: never in argv.
  const http = am.auth ? [`--http.config.file=${metricsFiles(node.paths).amtool}`] : [];
  const r = await node.host.exec(['amtool', 'config', 'routes', 'test', `--alertmanager.url=${am.base}`, ...http, ...args], { mutates: false, allowFailure: true, timeoutMs: 20_000 });
  if (r.exitCode !== 0) throw new HostError(`${node.host.name}: amtool could not test Alertmanager's routes: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
  return r.stdout
    .trim()
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
