import { HostError } from '../errors.js';

/**
 * Prometheus's HTTP API, read-only, from the control machine (the same way
 * Grafana reads it). Every call is bounded in time.
 */
export interface PromSample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export async function promGet<T>(base: string, path: string, timeoutMs = 10_000): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new HostError(`Prometheus at ${base} does not answer: ${(e as Error).message}`, { hint: 'Is the prometheus service running on the monitoring host? `dpgc sprint 1` starts it.' });
  }
  const body = (await res.json().catch(() => undefined)) as { status?: string; data?: T; error?: string } | undefined;
  if (!res.ok || body?.status !== 'success') throw new HostError(`Prometheus ${path}: HTTP ${res.status} ${body?.error ?? ''}`.trim());
  return body.data as T;
}

/** An instant query; `error` set (never thrown) when Prometheus rejects the expression. */
export async function promQuery(base: string, expr: string): Promise<{ result: PromSample[]; error?: string }> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json().catch(() => ({}))) as { status?: string; data?: { result: PromSample[] }; error?: string };
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

export async function activeTargets(base: string): Promise<ActiveTarget[]> {
  return (await promGet<{ activeTargets: ActiveTarget[] }>(base, '/api/v1/targets?state=active')).activeTargets;
}

export interface RuleGroup {
  name: string;
  file: string;
  rules: { type: 'alerting' | 'recording'; name: string; health: string; lastError?: string; state?: string; labels?: Record<string, string> }[];
}

export async function ruleGroups(base: string): Promise<RuleGroup[]> {
  return (await promGet<{ groups: RuleGroup[] }>(base, '/api/v1/rules')).groups;
}

export async function healthy(base: string): Promise<boolean> {
  try {
    return (await fetch(`${base}/-/healthy`, { signal: AbortSignal.timeout(5000) })).ok;
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
