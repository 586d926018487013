import { HostError } from '../errors.js';
import { metricsWeb } from '../components/metrics-web.js';
import { prometheusTarget } from '../components/prometheus.js';
import { webGet, type WebTarget } from '../components/web-client.js';

/**
 * Prometheus's HTTP API, read-only, from the control machine (the same way
 * Grafana reads it): over TLS with basic auth once sprint 5 turned that on.
 * Every call is bounded in time.
 */
export async function prometheusApi(ctx: Parameters<typeof metricsWeb>[0]): Promise<WebTarget> {
  return prometheusTarget(ctx.inventory, await metricsWeb(ctx));
}

export interface PromSample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

const json = <T>(text: string): T | undefined => {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
};

async function get(prom: WebTarget, path: string, timeoutMs: number) {
  try {
    return await webGet(prom, path, { timeoutMs });
  } catch (e) {
    throw new HostError(`Prometheus at ${prom.base} does not answer: ${(e as Error).message}`, {
      hint: 'Is the prometheus service running on the monitoring host, serving as its web config says? `dpgc sprint 1` starts it (and keeps TLS on once sprint 5 turned it on).',
    });
  }
}

export async function promGet<T>(prom: WebTarget, path: string, timeoutMs = 10_000): Promise<T> {
  const res = await get(prom, path, timeoutMs);
  const body = json<{ status?: string; data?: T; error?: string }>(res.body);
  if (res.status !== 200 || body?.status !== 'success') throw new HostError(`Prometheus ${path}: HTTP ${res.status} ${body?.error ?? ''}`.trim());
  return body.data as T;
}

/** An instant query; `error` set (never thrown) when Prometheus rejects the expression. */
export async function promQuery(prom: WebTarget, expr: string): Promise<{ result: PromSample[]; error?: string }> {
  const res = await get(prom, `/api/v1/query?query=${encodeURIComponent(expr)}`, 10_000);
  const body = json<{ status?: string; data?: { result: PromSample[] }; error?: string }>(res.body) ?? {};
  if (body.status !== 'success') return { result: [], error: body.error ?? `HTTP ${res.status}` };
  return { result: body.data?.result ?? [] };
}

export interface ActiveTarget {
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  lastScrape: string;
}

export async function activeTargets(base: WebTarget): Promise<ActiveTarget[]> {
  return (await promGet<{ activeTargets: ActiveTarget[] }>(base, '/api/v1/targets?state=active')).activeTargets;
}

export interface RuleGroup {
  name: string;
  file: string;
  rules: { type: 'alerting' | 'recording'; name: string; health: string; lastError?: string; state?: string; labels?: Record<string, string> }[];
}

export async function ruleGroups(base: WebTarget): Promise<RuleGroup[]> {
  return (await promGet<{ groups: RuleGroup[] }>(base, '/api/v1/rules')).groups;
}

export async function healthy(base: WebTarget): Promise<boolean> {
  try {
    return (await webGet(base, '/-/healthy', { timeoutMs: 5000 })).status === 200;
  } catch {
    return false;
  }
}

/** Median spacing of consecutive samples, in seconds: the scrape interval as measured. */
export function medianSpacingS(values: [number, string][]): number | undefined {
  const gaps = values.slice(1).map((v, i) => v[0] - values[i]![0]).sort((a, b) => a - b);
  if (!gaps.length) return undefined;
  const mid = Math.floor(gaps.length / 2);
  return gaps.length % 2 ? gaps[mid]! : (gaps[mid - 1]! + gaps[mid]!) / 2;
}
