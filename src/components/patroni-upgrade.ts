import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { HostPool } from '../hosts/pool.js';
import type { SizedSetting } from '../config/sizing.js';
import { HostError } from '../errors.js';
import { isLeaderRole, memberStatus, PATRONI_SERVICE, patroniService, patroniView, rest, REST_USER, restTarget, switchover } from './patroni.js';
import { memberDrift, waitForSettingsLoaded } from './sizing.js';
import { waitUntil } from '../wait.js';
import { waitForHealthyCluster } from './patroni-cluster.js';
import { hasLeaderKeyFix } from './patroni-package.js';

/**
 * A package upgrade does not change the code a running Patroni executes. A
 * member still running a release without the leader-key fix is restarted, one
 * at a time, with the cluster whole between restarts: replicas first, then a
 * switchover away from the leader (the only write gap, a planned switchover's
 * couple of seconds), then the old leader, now a replica.
 */
export interface RestartPlan {
  replicas: string[];
  leader?: string;
}

/** Pure: the members that need it, replicas first, the leader last. */
export function restartOrder<T extends { name: string; role: string }>(members: T[], needs: (m: T) => boolean): RestartPlan {
  const these = members.filter(needs);
  const leader = these.find((m) => isLeaderRole(m.role));
  return { replicas: these.filter((m) => m !== leader).map((m) => m.name), ...(leader ? { leader: leader.name } : {}) };
}

/** Pure: which members to restart, in order. Members that did not answer are left to the topology criterion. */
export function outdatedRestartPlan(members: { name: string; role: string; version?: string }[]): RestartPlan {
  return restartOrder(members, (m) => m.version !== undefined && !hasLeaderKeyFix(m.version));
}

/**
 * One member at a time, the cluster whole between restarts: replicas, then a
 * switchover away from the leader (the only write gap), then the old leader.
 */
export async function rollThrough(inv: Inv, secrets: Pick<Secrets, 'get'>, plan: RestartPlan, restartOne: (name: string) => Promise<void>): Promise<{ changed: boolean; note?: string }> {
  if (!plan.replicas.length && !plan.leader) return { changed: false };
  const done: string[] = [];
  const restart = async (name: string) => {
    await restartOne(name);
    await waitForHealthyCluster(inv, secrets, { timeoutMs: 180_000 });
    done.push(`restarted ${name}`);
  };
  for (const r of plan.replicas) await restart(r);
  if (plan.leader) {
    const s = await switchover(inv, secrets);
    await waitForHealthyCluster(inv, secrets, { timeoutMs: 180_000 });
    done.push(`switchover ${s.from} → ${s.to} in ${(s.durationMs / 1000).toFixed(1)} s`);
    await restart(plan.leader);
  }
  return { changed: true, note: done.join('; ') };
}

type Inv = Pick<Inventory, 'hosts' | 'ports' | 'postgres' | 'timings'> & Partial<Pick<Inventory, 'cluster' | 'backup'>>;

async function restartPlan(inv: Inv): Promise<RestartPlan> {
  const { members } = await patroniView(inv);
  const withVersions = await Promise.all(
    members.map(async (m) => {
      const host = inv.hosts.find((h) => h.name === m.name);
      const s = host ? await memberStatus(restTarget(inv, host)).catch(() => undefined) : undefined;
      return { name: m.name, role: m.role, ...(s?.patroni?.version ? { version: s.patroni.version } : {}) };
    }),
  );
  return outdatedRestartPlan(withVersions);
}

/** What rollingRestartOutdated would restart, read from the members, nothing restarted. */
export async function outdatedMembers(inv: Inv): Promise<{ changed: boolean; note?: string; would?: string[] }> {
  const plan = await restartPlan(inv);
  const would = [...plan.replicas.map((r) => `restart Patroni on ${r}`), ...(plan.leader ? [`switch over from ${plan.leader}, then restart Patroni on it`] : [])];
  return would.length ? { changed: true, would } : { changed: false };
}

export async function rollingRestartOutdated(inv: Inv, secrets: Pick<Secrets, 'get'>, pool: HostPool): Promise<{ changed: boolean; note?: string }> {
  // The service itself: new Patroni code runs only in a new process.
  return rollingRestart(inv, secrets, pool, await restartPlan(inv));
}

/**
 * Restarts Patroni (and with it PostgreSQL) on the members of `plan`, in
 * rollThrough's order. A stop and a start, not a signal: the start picks up
 * the service's current environment (and on systemd hosts its unit file).
 */
export async function rollingRestart(inv: Inv, secrets: Pick<Secrets, 'get'>, pool: HostPool, plan: RestartPlan): Promise<{ changed: boolean; note?: string }> {
  return rollThrough(inv, secrets, plan, async (name) => {
    const n = await pool.node(name);
    await n.services.stop({ name: PATRONI_SERVICE, stopTimeoutMs: 120_000 });
    await n.services.start(patroniService(inv, n));
  });
}

/** Members whose server runs an old value of a setting that needs a restart (shared_buffers, huge_pages…), in restart order. */
async function pendingPlan(inv: Inv, secrets: Pick<Secrets, 'get'>, wanted: SizedSetting[]): Promise<RestartPlan> {
  const pending = await waitForSettingsLoaded(inv, secrets, wanted, { timeoutMs: 30_000 });
  const { members } = await patroniView(inv);
  return restartOrder(members, (m) => pending.includes(m.name));
}

/**
 * What rollingRestartPending would restart, nothing restarted nor waited for:
 * under observation the dynamic configuration was not changed, so members
 * already pending are certain, the others depend on what the PATCH changes.
 */
export async function pendingMembers(inv: Inv, secrets: Pick<Secrets, 'get'>, wanted: SizedSetting[]): Promise<{ changed: boolean; note?: string; would?: string[] }> {
  const drift = await Promise.all(inv.hosts.filter((h) => h.roles.includes('postgres')).map(async (h) => ({ name: h.name, d: await memberDrift(inv, secrets, h, wanted) })));
  const { members } = await patroniView(inv);
  const plan = restartOrder(members, (m) => drift.some((x) => x.name === m.name && x.d.some((d) => d.pendingRestart)));
  const later = drift.filter((x) => x.d.some((d) => !d.pendingRestart)).map((x) => x.name);
  const note = later.length ? `once the dynamic configuration is converged, a restart if it changes a start-only setting on ${later.join(', ')}` : undefined;
  const would = [...plan.replicas.map((r) => `restart PostgreSQL on ${r}`), ...(plan.leader ? [`switch over from ${plan.leader}, then restart PostgreSQL on it`] : [])];
  return would.length || note ? { changed: true, ...(note ? { note } : {}), would } : { changed: false };
}

/**
 * After Patroni's dynamic configuration changed a setting PostgreSQL reads
 * only at start: PostgreSQL (not Patroni) restarted through Patroni's
 * POST /restart, member by member, in rollThrough's order.
 */
export async function rollingRestartPending(inv: Inv, secrets: Pick<Secrets, 'get'>, wanted: SizedSetting[]): Promise<{ changed: boolean; note?: string }> {
  const auth = { username: REST_USER, password: await secrets.get('patroni_rest') };
  return rollThrough(inv, secrets, await pendingPlan(inv, secrets, wanted), async (name) => {
    const h = inv.hosts.find((x) => x.name === name)!;
    const text = (b: unknown) => String(typeof b === 'string' ? b : JSON.stringify(b)).trim();
    // Right after a switchover the old leader's Patroni may still be finishing its demotion, and says so (503 "… in progress"): ask again.
    await waitUntil(
      async (seen) => {
        const r = await rest(restTarget(inv, h), 'POST', '/restart', { body: {}, auth, timeoutMs: 180_000 });
        if (r.status === 200) return true;
        if (r.status === 503 && /in progress/i.test(text(r.body))) return seen(text(r.body)), undefined;
        throw new HostError(`${name}: Patroni refused to restart PostgreSQL (HTTP ${r.status}): ${text(r.body)}`);
      },
      { timeoutMs: 60_000, everyMs: 1000, timeoutError: (t) => new HostError(`${name}: Patroni did not restart PostgreSQL within 60 s: ${String(t.lastSeen ?? 'no answer')}`) },
      `Patroni on ${name} restarting PostgreSQL`,
    );
  });
}

/**
 * Members to restart so they run what the inventory now asks: Patroni started
 * without the environment its service gives it today (read from the running
 * process), or PostgreSQL waiting for a restart (Patroni's pending_restart, or
 * `mustBe` settings that only a restart applies, such as archive_mode).
 */
export async function staleMembers(inv: Inv, pool: HostPool, mustBe: (member: string) => Promise<string | undefined> = async () => undefined): Promise<RestartPlan & { why: string[] }> {
  const { members } = await patroniView(inv);
  const why: string[] = [];
  const stale: { name: string; role: string }[] = [];
  for (const m of members) {
    const host = inv.hosts.find((h) => h.name === m.name);
    if (!host) continue;
    const n = await pool.node(host.name);
    const reasons: string[] = [];
    const st = await n.services.status({ name: PATRONI_SERVICE });
    if (st.running) {
      const env = (await n.host.readFile(`/proc/${st.pid}/environ`)) ?? '';
      const have = new Set(env.split('\0'));
      const missing = Object.entries(patroniService(inv, n).env ?? {}).filter(([k, v]) => !have.has(`${k}=${v}`)).map(([k]) => k);
      if (missing.length) reasons.push(`Patroni runs without ${missing.join(', ')}`);
    }
    const s = await memberStatus(restTarget(inv, host)).catch(() => undefined);
    if (s?.pending_restart) reasons.push('PostgreSQL has a pending restart');
    const other = await mustBe(m.name);
    if (other) reasons.push(other);
    if (reasons.length) {
      stale.push({ name: m.name, role: m.role });
      why.push(`${m.name}: ${reasons.join(', ')}`);
    }
  }
  return { ...restartOrder(stale, () => true), why };
}
