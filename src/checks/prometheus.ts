import { parse } from 'yaml';
import { expectedAlertNames, monitoredSprint, prometheusFiles, prometheusTarget, ruleFilesOf, SCRAPE_INTERVAL_S, SCRAPE_JOBS, scrapeTargets, type RuleFile, type Target } from '../components/prometheus.js';
import { metricsWeb, type MetricsWeb } from '../components/metrics-web.js';
import { httpGet, type WebTarget } from '../components/web-client.js';
import { type Inventory } from '../config/schema.js';
import { type RunContext } from '../context.js';
import { activeTargets, healthy, type ActiveTarget, medianSpacingS, prometheusApi, promGet, promQuery, ruleGroups } from './prom-api.js';
import { fail, pass, type Check } from './types.js';
import { sleep } from '../wait.js';

/**
 * Prometheus's criteria: every target the sprints deployed is scraped, every
 * 15 s, and the alert rules are loaded, evaluate, pass their promtool tests
 * as installed, and read series that are scraped. Shared by the sprints that
 * add targets and rules (factories take the sprint and id).
 */

/**
 * Each sprint judges the targets its own components add (jobs whose
 * sinceSprint is that sprint, sprint 1 everything before), so a dead etcd
 * member fails sprint 2's criteria and never locks `dpgc sprint 2`, the
 * command that restarts it, behind sprint 1's gate.
 */
export function targetsUpCheck(id: string, sprint: number, title: string): Check {
  return {
    id,
    title,
    sprint,
    kind: 'read',
    async run(ctx) {
      const tls = await metricsWeb(ctx);
      const prom = prometheusTarget(ctx.inventory, tls);
      if (!(await healthy(prom))) return fail(`Prometheus at ${prom.base} is not healthy (/-/healthy)`, { remedy: 'Run `dpgc sprint 1`; it starts Prometheus on the monitoring host.' });
      const mine = (job: string) => {
        const since = SCRAPE_JOBS.find((j) => j.job === job)?.sinceSprint ?? 1;
        return sprint === 1 ? since <= 1 : since === sprint;
      };
      const expected = scrapeTargets(ctx.inventory, await monitoredSprint(ctx, sprint)).filter((t) => mine(t.job));
      const { problems, down } = await targetsUp(prom, tls, expected);
      const value = `${expected.length - down.length}/${expected.length} up`;
      if (problems.length) {
        const by = [...new Set(down.map((e) => deployedBy(ctx.inventory, e)))].sort();
        const runs = by.map((s) => `\`dpgc sprint ${s}\``).join(' or ');
        return fail(problems.join('\n'), { value, threshold: 'all up', remedy: `Start what is down (${runs} starts it, and is safe to re-run) and look at its log on that host.` });
      }
      return pass(value, 'all up');
    },
  };
}

/**
 * Whether Prometheus scrapes each expected target successfully, judged on
 * fresh scrapes: one line per target that is not, naming job, host and
 * address. With `tls` on, a metrics endpoint (a target with `web`) scraped
 * other than over https is one too.
 */
export async function targetsUp(prom: WebTarget, tls: MetricsWeb | undefined, expected: Target[]): Promise<{ problems: string[]; down: Target[] }> {
  // Judge fresh scrapes only: wait (at most two intervals) until every target was scraped after this check began,
  // except a target whose last scrape (within two intervals) was up and that answers its scrape URL from here now:
  // waiting up to an interval for Prometheus to see what this check just saw proves nothing more. One that does
  // not answer from here (dead, or a firewall between this machine and it) waits, and Prometheus's view decides.
  // Probing and waiting go on together; whichever settles a target first does.
  const since = Date.now();
  let targets = await activeTargets(prom);
  const answering = new Set<string>();
  const targetOf = (e: { instance: string; job: string }) => targets.find((x) => x.labels['instance'] === e.instance && x.labels['job'] === e.job);
  const probing = new AbortController();
  for (const e of expected) {
    const t = targetOf(e);
    void answersNow(t, since, probing.signal, tls).then((ok) => ok && answering.add(e.instance));
  }
  const fresh = () => expected.every((e) => answering.has(e.instance) || targets.some((t) => t.labels['instance'] === e.instance && Date.parse(t.lastScrape) >= since));
  try {
    for (let waited = 0; !fresh() && waited < 2 * SCRAPE_INTERVAL_S * 1000 + 5000; waited += 250) {
      await sleep(250);
      if (waited % 1000 === 750) targets = await activeTargets(prom);
    }
  } finally {
    probing.abort();
  }
  // A reload (sprint 1 or 4 changing the config) replaces the scrape loops: a target that answered from here may
  // show `unknown` (its new loop has not scraped yet) by the time the wait ends. Unknown is not down; down is.
  const up = (e: Target) => targetOf(e)?.health === 'up' || (answering.has(e.instance) && targetOf(e)?.health === 'unknown');
  const plain = (e: Target) => tls !== undefined && e.web !== undefined && !targetOf(e)?.scrapeUrl.startsWith('https://');
  const problems = expected.flatMap((e) => {
    const t = targetOf(e);
    if (!t) return [`${e.job} on ${e.host} (${e.instance}) is not in Prometheus's configuration`];
    if (plain(e)) return [`${e.job} on ${e.host} (${e.instance}) is scraped in plaintext (${t.scrapeUrl})`];
    return up(e) ? [] : [`${e.job} on ${e.host} (${e.instance}) is ${t.health}${t.lastError ? `: ${t.lastError}` : ''}`];
  });
  return { problems, down: expected.filter((e) => !targetOf(e) || plain(e) || !up(e)) };
}

/** Whether Prometheus's last scrape of it was up, within two intervals of `now`, and its scrape URL answers 200 from here. */
async function answersNow(t: ActiveTarget | undefined, now: number, signal: AbortSignal, tls: MetricsWeb | undefined): Promise<boolean> {
  if (!t || t.health !== 'up' || now - Date.parse(t.lastScrape) > 2 * SCRAPE_INTERVAL_S * 1000) return false;
  // The body too: an exporter that answers headers and then hangs does not count as answering.
  // Prometheus's own default scrape timeout: a target slower than that it would call down too.
  // Over https, as Prometheus does: the cluster CA and the metrics credentials.
  const secure = t.scrapeUrl.startsWith('https://') && tls ? { ca: tls.ca, auth: { username: tls.username, password: tls.password } } : {};
  return httpGet(t.scrapeUrl, { signal, timeoutMs: 10_000, ...secure })
    .then((r) => r.status === 200)
    .catch(() => false);
}

/**
 * The sprint that starts a target's daemon, which is not always its job's
 * sinceSprint: a replica's postgres_exporter arrives with sprint 3 (the HA
 * cluster), though the postgres job is sprint 1's.
 */
export function deployedBy(inv: Pick<Inventory, 'hosts' | 'file'>, t: Pick<Target, 'job' | 'host'>): number {
  const job = SCRAPE_JOBS.find((j) => j.job === t.job);
  if (!job) return 1;
  for (let s = job.sinceSprint; s <= 5; s++) if (job.hosts(inv, s).some((h) => h.name === t.host)) return s;
  return job.sinceSprint;
}

export const prometheusTargets: Check = targetsUpCheck('s1.prometheus.targets', 1, 'Prometheus is healthy and every expected target is up');

export const scrapeInterval: Check = {
  id: 's1.prometheus.interval',
  title: `Prometheus scrapes every ${SCRAPE_INTERVAL_S} s`,
  sprint: 1,
  kind: 'read',
  async run(ctx) {
    const base = await prometheusApi(ctx);
    const cfg = parse((await promGet<{ yaml: string }>(base, '/api/v1/status/config')).yaml) as {
      global?: { scrape_interval?: string };
      scrape_configs?: { job_name: string; scrape_interval?: string }[];
    };
    const want = `${SCRAPE_INTERVAL_S}s`;
    const off = (cfg.scrape_configs ?? []).filter((j) => j.scrape_interval && j.scrape_interval !== want).map((j) => `${j.job_name}: ${j.scrape_interval}`);
    if (cfg.global?.scrape_interval !== want || off.length) {
      return fail(`configured scrape interval is ${cfg.global?.scrape_interval}${off.length ? `; jobs overriding it: ${off.join(', ')}` : ''}`, { value: cfg.global?.scrape_interval ?? '?', threshold: want });
    }
    // Measured: spacing of Prometheus's own `up` samples over the last two minutes.
    let spacing: number | undefined;
    for (let i = 0; i < 40 && spacing === undefined; i++) {
      const r = await promQuery(base, 'up{job="prometheus"}[2m]');
      spacing = medianSpacingS(r.result[0]?.values ?? []);
      if (spacing === undefined) await sleep(1000);
    }
    if (spacing === undefined) return fail('Prometheus has fewer than two samples of its own `up` yet', { threshold: want });
    const value = `${spacing.toFixed(1)} s measured`;
    return Math.abs(spacing - SCRAPE_INTERVAL_S) <= 1 ? pass(value, want) : fail(`samples arrive every ${spacing.toFixed(1)} s`, { value, threshold: want });
  },
};

/** A query whose answer must not be empty for an alert to be able to fire: what it reads exists. */
export interface RuleInput {
  what: string;
  expr: string;
}

/**
 * The alert rules a sprint installs: loaded by Prometheus and evaluating
 * without error, their promtool tests passing against the files as installed
 * on the monitoring host (each test names `../rules/<file>`), and, where
 * given, every input series present (an alert over a series that is never
 * scraped can never fire).
 */
export function rulesCheck(id: string, sprint: number, title: string, inputs: RuleInput[] = []): Check {
  const files = ruleFilesOf(sprint);
  const remedy = `Run \`dpgc sprint ${sprint}\`: it validates the rules with promtool, installs them with their tests and reloads Prometheus.`;
  return {
    id,
    title,
    sprint,
    kind: 'read',
    async run(ctx) {
      const base = await prometheusApi(ctx);
      const info = await promGet<{ reloadConfigSuccess: boolean }>(base, '/api/v1/status/runtimeinfo');
      if (!info.reloadConfigSuccess) {
        return fail('Prometheus failed to load its configuration or rule files at the last reload: it runs on an older version', {
          remedy: 'Read the prometheus log on the monitoring host; `dpgc sprint 1` validates with promtool before installing.',
        });
      }
      const expected = expectedAlertNames(files);
      const rules = (await ruleGroups(base)).flatMap((g) => g.rules.filter((r) => r.type === 'alerting' && expected.includes(r.name)).map((r) => ({ ...r, file: g.file })));
      const missing = expected.filter((n) => !rules.some((r) => r.name === n));
      const broken = rules.filter((r) => r.health === 'err').map((r) => `${r.name} (${r.file}): ${r.lastError ?? 'error'}`);
      const [untested, absent] = await Promise.all([failedRuleTests(ctx, files), missingInputs(base, inputs)]);
      const threshold = `${expected.length} rules, none failing, promtool tests pass${inputs.length ? `, ${inputs.length} inputs present` : ''}`;
      const value = `${rules.length} alerting rules`;
      const problems = [...(missing.length ? [`not loaded: ${missing.join(', ')}`] : []), ...broken.map((b) => `fails to evaluate: ${b}`), ...untested, ...absent];
      return problems.length ? fail(problems.join('\n'), { value, threshold, remedy }) : pass(value, threshold);
    },
  };
}

/** `promtool test rules` on the monitoring host, for each file's installed tests: one line per failing file. */
async function failedRuleTests(ctx: RunContext, files: readonly RuleFile[]): Promise<string[]> {
  const mon = ctx.pool.specs('monitoring')[0];
  if (!mon) return ['no host has the monitoring role'];
  const n = await ctx.pool.node(mon.name);
  const out = await Promise.all(
    files.map(async (f) => {
      const test = prometheusFiles(n.paths).ruleTest(f);
      const r = await n.host.exec(['promtool', 'test', 'rules', test], { mutates: false, allowFailure: true, timeoutMs: 60_000 });
      if (r.exitCode === 0) return undefined;
      const said = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l && !/^Unit Testing:/.test(l)).slice(0, 6).join(' ');
      return `promtool tests of ${f} fail on ${mon.name} (${test}): ${said}`;
    }),
  );
  return out.filter((x): x is string => x !== undefined);
}

/** Inputs with no data; a series written moments ago (the sprint's own first backup) gets two scrape intervals to arrive. */
async function missingInputs(base: WebTarget, inputs: readonly RuleInput[]): Promise<string[]> {
  for (let waited = 0; ; waited += 5000) {
    const answers = await Promise.all(inputs.map((i) => promQuery(base, i.expr)));
    const problems = inputs.flatMap((i, k) => {
      const a = answers[k]!;
      if (a.error) return [`input ${i.what}: query error: ${a.error}`];
      return a.result.length ? [] : [`no data for ${i.what} (${i.expr}): the alerts reading it cannot fire`];
    });
    if (!problems.length || problems.some((p) => p.includes('query error')) || waited >= 2 * SCRAPE_INTERVAL_S * 1000) return problems;
    await sleep(5000);
  }
}

// The title is a contract (criteria.test.ts); the check also runs the installed promtool tests.
export const rulesLoaded: Check = rulesCheck('s1.prometheus.rules', 1, 'Alert rules are loaded and evaluate without error');
