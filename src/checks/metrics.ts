import { RENEW_BEFORE_DAYS } from '../components/ca.js';
import { metricsWeb, type MetricsWeb } from '../components/metrics-web.js';
import { metricsEndpoints, monitoredSprint, prometheusTarget, scrapeTargets, type MetricsEndpoint } from '../components/prometheus.js';
import { webGet, webTarget, type WebResponse } from '../components/web-client.js';
import { targetsUp } from './prometheus.js';
import { fail, pass, type Check } from './types.js';

/**
 * Sprint 5's criterion for the metrics plane: every metrics endpoint dpgc
 * runs refuses a plaintext HTTP request, answers an HTTPS request without
 * credentials with 401 (over a certificate the cluster CA signed for the
 * address dialled, valid for 30 days or more), serves dpgc's credentials,
 * and Prometheus still scrapes every one of them, over TLS.
 */
export { metricsEndpoints, type MetricsEndpoint } from '../components/prometheus.js';

/** What one endpoint answered: a plaintext request, an HTTPS one without credentials, one with dpgc's. */
export interface Answers {
  plain: WebResponse | Error;
  anonymous: WebResponse | Error;
  authed: WebResponse | Error;
}

/**
 * Pure: what is wrong with one endpoint, one line each, naming it. A TLS
 * listener of exporter-toolkit answers plaintext HTTP with its own 400
 * ("Client sent an HTTP request to an HTTPS server"), the PgBouncer exporter
 * closes the connection: both are refusals; any other answer is plaintext
 * being served.
 */
export function endpointProblems(e: MetricsEndpoint, a: Answers, now: Date): string[] {
  const who = `${e.what} on ${e.host} (${e.hostPort})`;
  const problems: string[] = [];
  if (!(a.plain instanceof Error) && !(a.plain.status === 400 && /HTTPS server/i.test(a.plain.body))) problems.push(`${who} answers plaintext HTTP (HTTP ${a.plain.status})`);
  if (a.anonymous instanceof Error) {
    problems.push(`${who} does not serve TLS verified by the cluster CA: ${a.anonymous.message}`);
    return problems;
  }
  if (a.anonymous.status !== 401) problems.push(`${who} answers HTTPS without credentials (HTTP ${a.anonymous.status}, want 401)`);
  if (a.authed instanceof Error) problems.push(`${who} fails a request with dpgc's credentials: ${a.authed.message}`);
  else if (a.authed.status !== 200) problems.push(`${who} refuses dpgc's credentials (HTTP ${a.authed.status})`);
  const end = a.anonymous.peerValidTo;
  const days = end ? (end.getTime() - now.getTime()) / 86_400_000 : undefined;
  if (end && days !== undefined && days < RENEW_BEFORE_DAYS) problems.push(`${who}: its certificate ends ${end.toISOString().slice(0, 10)} (${Math.floor(days)} days)`);
  return problems;
}

async function answers(e: MetricsEndpoint, tls: MetricsWeb): Promise<Answers> {
  const asError = (x: unknown) => (x instanceof Error ? x : new Error(String(x)));
  const get = (secure: boolean, withAuth: boolean) =>
    webGet(webTarget(e.hostPort, secure ? tls : undefined), e.path, { timeoutMs: 10_000, withAuth }).catch(asError);
  const [plain, anonymous, authed] = await Promise.all([get(false, false), get(true, false), get(true, true)]);
  return { plain, anonymous, authed };
}

const REPAIR =
  'Run `dpgc sprint 5` again: it restarts an endpoint that does not serve its web config (dpgc starts each with `--web.config.file`), issues a missing certificate and points Prometheus at every endpoint over TLS. `dpgc sprint 1` keeps the same on a sprint-5 cluster.';

export const metricsTls: Check = {
  id: 's5.tls.metrics',
  title: 'Every metrics endpoint (exporters, Prometheus, Alertmanager) refuses plaintext HTTP and answers 401 without credentials; Prometheus scrapes each over TLS',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const inv = ctx.inventory;
    const tls = await metricsWeb(ctx);
    if (!tls) return fail(`${inv.cluster}'s PostgreSQL does not serve TLS, so dpgc keeps the metrics endpoints in plaintext too`, { remedy: REPAIR });
    const sprint = await monitoredSprint(ctx, 5);
    const endpoints = metricsEndpoints(inv, sprint);
    const now = new Date();
    const perEndpoint = await Promise.all(endpoints.map(async (e) => endpointProblems(e, await answers(e, tls), now)));
    const scraped = scrapeTargets(inv, sprint).filter((t) => t.web);
    const up = await targetsUp(prometheusTarget(inv, tls), tls, scraped).catch((e: Error) => ({ problems: [`cannot ask Prometheus which targets it scrapes: ${e.message.split('\n')[0]}`], down: scraped }));
    const bad = perEndpoint.filter((p) => p.length).length;
    const value = `${endpoints.length - bad}/${endpoints.length} endpoints refuse plaintext and anonymous requests, ${scraped.length - up.down.length}/${scraped.length} scraped over TLS`;
    const threshold = 'every endpoint, every target up';
    const problems = [...perEndpoint.flat(), ...up.problems];
    return problems.length ? fail(problems.join('\n'), { value, threshold, remedy: REPAIR }) : pass(value, threshold);
  },
};
