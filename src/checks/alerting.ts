import { parse } from 'yaml';
import { alertmanagerAddress, alertmanagerTarget, amGet, liveReceivers, NOBODY, routedReceivers, type LiveReceiver } from '../components/alertmanager.js';
import { metricsFiles, metricsWeb } from '../components/metrics-web.js';
import { prometheusTarget } from '../components/prometheus.js';
import { webGet, webTarget, type WebTarget } from '../components/web-client.js';
import type { RunContext } from '../context.js';
import { promGet, ruleGroups } from './prom-api.js';
import { fail, pass, type Check, type CheckResult } from './types.js';
import { becomes } from '../wait.js';

/**
 * Whether Prometheus's alerts reach someone: Alertmanager answers and
 * Prometheus sends to it, and Alertmanager's *running* route tree gives every
 * alert rule a receiver that notifies somebody. Measured live (Prometheus's
 * loaded rules, Alertmanager's loaded config), so a hand-edited or stale
 * config on the host counts, not what dpgc would render.
 */

/** How long Prometheus may take to pick up its Alertmanagers after a start or reload. */
const DISCOVERY_MS = 20_000;

const ROUTE_REMEDY =
  'Give them a receiver: set alerting.receiver (the receiver of every alert no route claims) or add a route in alerting.routes whose matchers match their labels, then run `dpgc sprint 1`.';

export interface AlertRule {
  name: string;
  /** What an alert of this rule carries for certain: alertname, the rule's own labels, Prometheus's external labels. */
  labels: Record<string, string>;
}

/** The alert rules Prometheus has loaded, each once, with the labels its alerts carry whatever series fires them. */
export async function loadedAlertRules(promBase: WebTarget): Promise<AlertRule[]> {
  const cfg = parse((await promGet<{ yaml: string }>(promBase, '/api/v1/status/config')).yaml) as { global?: { external_labels?: Record<string, string> } } | null;
  const external = cfg?.global?.external_labels ?? {};
  const seen = new Map<string, AlertRule>();
  for (const g of await ruleGroups(promBase)) {
    for (const r of g.rules) {
      if (r.type !== 'alerting') continue;
      const labels = { ...external, ...(r.labels ?? {}), alertname: r.name };
      seen.set(JSON.stringify(Object.entries(labels).sort()), { name: r.name, labels });
    }
  }
  return [...seen.values()];
}

const shown = (r: AlertRule) =>
  `${r.name}${Object.keys(r.labels).length > 2 ? ` (${Object.entries(r.labels).filter(([k]) => k !== 'alertname' && k !== 'cluster').map(([k, v]) => `${k}=${v}`).join(', ')})` : ''}`;

/** Pure: the rules whose every receiver notifies nobody (`to`: the receivers the route tree gives each), with where they end up. */
export function unrouted(rules: (AlertRule & { to: string[] })[], receivers: LiveReceiver[]): string[] {
  const reaches = (name: string) => (receivers.find((x) => x.name === name)?.integrations.length ?? 0) > 0;
  return rules.flatMap((r) => {
    const to = r.to;
    if (to.some(reaches)) return [];
    return [`${shown(r)} → ${to.length ? to.join(', ') : 'no receiver'}${to.length ? ` (${to.length === 1 ? 'a receiver' : 'receivers'} with no webhook, email or slack: ${to.includes(NOBODY) ? 'no route matches it, and alerting.receiver is not set' : 'it notifies nobody'})` : ''}`];
  });
}

/** Every alert rule's receivers, asked of the running Alertmanager; problems as a failed result. */
async function routing(ctx: RunContext): Promise<{ rules: AlertRule[]; problems: string[]; base: WebTarget; amtoolArgs: string } | CheckResult> {
  const inv = ctx.inventory;
  const tls = await metricsWeb(ctx);
  const base = alertmanagerTarget(inv, tls);
  const rules = await loadedAlertRules(prometheusTarget(inv, tls));
  if (!rules.length) return fail('Prometheus has no alert rules loaded', { remedy: 'Run `dpgc sprint 1`; s1.prometheus.rules says why they are missing.' });
  const receivers = await liveReceivers(base);
  const monitoring = await ctx.pool.node(ctx.pool.specs('monitoring')[0]!.name);
  const routed = await Promise.all(rules.map(async (r) => ({ ...r, to: await routedReceivers(monitoring, base, r.labels) })));
  const amtoolArgs = `--alertmanager.url=${base.base}${base.auth ? ` --http.config.file=${metricsFiles(monitoring.paths).amtool}` : ''}`;
  return { rules, base, amtoolArgs, problems: unrouted(routed, receivers) };
}

export const alertmanagerUp: Check = {
  id: 's1.alertmanager.up',
  title: 'Alertmanager answers on every monitoring host and Prometheus sends its alerts there',
  sprint: 1,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const hosts = ctx.pool.specs('monitoring');
    const problems: string[] = [];
    const down = new Set<string>();
    const tls = await metricsWeb(ctx);
    const scheme = tls ? 'https' : 'http';
    await Promise.all(
      hosts.map(async (h) => {
        const ok = await webGet(webTarget(alertmanagerAddress(inv, h), tls), '/-/ready', { timeoutMs: 5000 }).then(
          (r) => (r.status === 200 ? undefined : `HTTP ${r.status}`),
          (e: Error) => e.message,
        );
        if (ok !== undefined) down.add(h.name);
        if (ok !== undefined) problems.push(`Alertmanager on ${h.name} (${alertmanagerAddress(inv, h)}) is not ready: ${ok}`);
      }),
    );
    const wanted = hosts.map((h) => `${scheme}://${alertmanagerAddress(inv, h)}/api/v2/alerts`);
    let seen = { activeAlertmanagers: [] as { url: string }[] };
    // Prometheus applies its alerting config through its discovery loop, seconds after a start or
    // reload (seen: empty for ~5 s): give it that, as long as the configured list is not yet complete.
    await becomes(
      async () => {
        seen = await promGet<{ activeAlertmanagers: { url: string }[] }>(prometheusTarget(inv, tls), '/api/v1/alertmanagers');
        return wanted.every((w) => seen.activeAlertmanagers.some((a) => a.url === w));
      },
      { timeoutMs: DISCOVERY_MS, everyMs: 500 },
      'Prometheus lists every Alertmanager',
    );
    for (const h of hosts) {
      const want = `${scheme}://${alertmanagerAddress(inv, h)}/api/v2/alerts`;
      if (!seen.activeAlertmanagers.some((a) => a.url === want)) {
        down.add(h.name);
        problems.push(`Prometheus does not send alerts to ${want} (it sends to: ${seen.activeAlertmanagers.map((a) => a.url).join(', ') || 'nothing'})`);
      }
    }
    const value = `${hosts.length - down.size}/${hosts.length} up`;
    if (problems.length) {
      return fail(problems.sort().join('\n'), { value, threshold: 'every monitoring host', remedy: 'Run `dpgc sprint 1`: it starts Alertmanager and points Prometheus at it. If it still fails, read the alertmanager log on that host.' });
    }
    return pass(`${hosts.length} Alertmanager${hosts.length === 1 ? '' : 's'}, ${seen.activeAlertmanagers.length} in Prometheus`, 'up and used by Prometheus');
  },
};

export const alertsRouted: Check = {
  id: 's1.alertmanager.routes',
  title: 'Every alert rule is routed to a receiver that notifies someone',
  sprint: 1,
  kind: 'state',
  async run(ctx) {
    const r = await routing(ctx);
    if ('verdict' in r) return r;
    const value = `${r.rules.length - r.problems.length}/${r.rules.length} rules routed`;
    if (r.problems.length) return fail(`alerts of these rules reach nobody:\n${r.problems.join('\n')}`, { value, threshold: 'every rule', remedy: ROUTE_REMEDY });
    return pass(value, 'every rule');
  },
};

export interface Silence {
  id: string;
  status: { state: string };
  matchers: { name: string; value: string; isRegex: boolean; isEqual?: boolean }[];
  createdBy: string;
  comment: string;
  endsAt: string;
}

/** Pure: whether a silence mutes every alert of a rule (its matchers all decided by the rule's own labels). */
export function silences(rule: AlertRule, s: Silence): boolean {
  if (s.status.state !== 'active') return false;
  return s.matchers.every((m) => {
    const v = rule.labels[m.name];
    // A matcher on a label the rule does not fix (instance, datname) mutes some of its alerts, not all.
    if (v === undefined) return false;
    const hit = m.isRegex ? new RegExp(`^(?:${m.value})$`).test(v) : v === m.value;
    return (m.isEqual ?? true) ? hit : !hit;
  });
}

export const alertsReachPerson: Check = {
  id: 'r.alerts.routed',
  title: 'Alerts reach a person: every alert rule routed to a receiver that notifies someone, and none muted by a silence',
  sprint: 1,
  kind: 'state',
  async run(ctx) {
    const r = await routing(ctx);
    if ('verdict' in r) return r;
    const active = await amGet<Silence[]>(r.base, '/api/v2/silences');
    const muted = r.rules.flatMap((rule) =>
      active.filter((s) => silences(rule, s)).map((s) => `${shown(rule)} is muted by silence ${s.id} (${s.createdBy}: "${s.comment}") until ${s.endsAt}`),
    );
    const bad = new Set([...r.problems.map((p) => p.split(' ')[0]), ...muted.map((m) => m.split(' ')[0])]);
    const value = `${r.rules.length - bad.size}/${r.rules.length} rules reach a person`;
    if (r.problems.length || muted.length) {
      const detail = [...(r.problems.length ? ['alerts of these rules reach nobody:', ...r.problems] : []), ...muted].join('\n');
      const remedy = [r.problems.length ? ROUTE_REMEDY : '', muted.length ? `Expire the silence when the work it covers is done (\`amtool silence expire <id> ${r.amtoolArgs}\` on the monitoring host), or waive r.alerts.routed until it ends.` : '']
        .filter(Boolean)
        .join(' ');
      return fail(detail, { value, threshold: 'every rule', remedy });
    }
    return pass(value, 'every rule, no silence');
  },
};
