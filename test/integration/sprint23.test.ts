import { readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sprint2 } from '../../sprints/sprint-2.js';
import { sprint3 } from '../../sprints/sprint-3.js';
import type { Check, CheckResult } from '../../src/checks/types.js';
import { currentLeader, replicationRows } from '../../src/components/cluster.js';
import { DATABASES, firstPostgres, superuserOn } from '../../src/components/endpoints.js';
import { clientEndpoints, clientUrl, etcdctlNode, putKey } from '../../src/components/etcd.js';
import { haproxyBackends, haproxyUser, haproxyService, pgbouncerTargets, showStat, upServers, waitForPrimaryRoute } from '../../src/components/haproxy.js';
import { monitoredSprint } from '../../src/components/prometheus.js';
import { observeDynamicConfig, PAUSED_BY_DPGC, waitForHealthyCluster } from '../../src/components/patroni-cluster.js';
import { PATRONI_NAMESPACE, patroniService, rest, REST_USER, restTarget, switchover } from '../../src/components/patroni.js';
import { ensurePgbouncer } from '../../src/components/pgbouncer.js';
import { dcsInitializeKey, systemIdentifier } from '../../src/components/takeover.js';
import { dataFingerprint } from '../../src/components/replication.js';
import { allPids, postgresProcesses } from '../../src/drills/faults.js';
import type { RunContext } from '../../src/context.js';
import { withClient, connect } from '../../src/db/client.js';
import { waitUntil } from '../../src/wait.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Sprints 2 and 3 on a real lab (127.0.30.x): sprints 0 and 1 first (the
 * gates), then sprint 2 and 3 each twice (the second run changes nothing),
 * Patroni's takeover proved by system identifier and data, a planned
 * switchover under write load, and for each criterion a real breakage that
 * makes its check fail, repaired by the product itself where it can.
 */
let lab: TestLab;
let ctx: RunContext;
const timings: Record<string, number> = {};

const s2 = (id: string) => sprint2.criteria.find((c) => c.id === id)!;
const s3 = (id: string) => sprint3.criteria.find((c) => c.id === id)!;
const run = async (c: Check): Promise<CheckResult> => {
  try {
    return await c.run(ctx);
  } catch (e) {
    return { verdict: 'fail', detail: (e as Error).message };
  }
};
const node = (name: string) => ctx.pool.node(name);
type SprintDoc = { passed: boolean; tasks: { changed: number; unchanged: number }; results: { id: string; verdict: string; value?: string; detail?: string }[]; changedTasks?: string[] };
/** The number of tasks a sprint run changed, with their titles in the failure message. */
const changedOf = async (p: Promise<SprintDoc>) => {
  const d = await p;
  return expect(d.tasks.changed, (d.changedTasks ?? []).join('\n'));
};

/** Runs a sprint the way an operator does (human output, so the changed tasks are named), results from the state file. */
async function sprint(n: 2 | 3, extra: string[] = []): Promise<SprintDoc> {
  const started = Date.now();
  const r = await lab.cli(['--yes', 'sprint', String(n), ...extra]);
  timings[`sprint ${n}${timings[`sprint ${n}`] ? ' (again)' : ''}`] ??= (Date.now() - started) / 1000;
  expect(r.code, r.stderr).toBe(0);
  const changedTasks = r.stderr.split('\n').filter((l) => /\(changed[,)]/.test(l) && l.includes('✔'));
  const m = /(\d+) tasks changed something, (\d+) were already done|all (\d+) tasks were already done/.exec(r.stderr);
  const changed = m?.[3] !== undefined ? 0 : Number(m?.[1] ?? NaN);
  const state = JSON.parse(await readFile(lab.config.replace(/\.yaml$/, '.state.json'), 'utf8')) as { sprints: Record<string, { passed: boolean; results: SprintDoc['results'] }> };
  const rec = state.sprints[String(n)]!;
  return { passed: rec.passed, results: rec.results, tasks: { changed, unchanged: 0 }, changedTasks };
}

async function sql<T = Record<string, unknown>>(host: string, q: string, db = 'postgres'): Promise<T[]> {
  return withClient(ctx.secrets, superuserOn(ctx.inventory, ctx.pool.spec(host), db), async (c) => (await c.query(q)).rows as T[]);
}

async function socket(cmd: string): Promise<string> {
  const n = await node('ctl');
  return (await n.host.exec(['socat', '-t', '2', 'stdio', `unix-connect:${n.paths.haproxySocket}`], { input: `${cmd}\n` })).stdout;
}

let sysidBefore: string;
let dataBefore: Record<string, Record<string, string>>;

beforeAll(async () => {
  lab = await createLab('127.0.30');
  for (const n of ['0', '1']) {
    const r = await lab.cli(['--yes', 'sprint', n]);
    expect(r.code, r.stderr).toBe(0);
  }
  ctx = await lab.context();
  // What sprint 0 built, before anything of sprints 2–3 touches it.
  const db1 = firstPostgres(ctx.inventory);
  sysidBefore = await systemIdentifier(await node(db1.name));
  dataBefore = {};
  for (const d of Object.values(DATABASES)) dataBefore[d.name] = await dataFingerprint(ctx.secrets, ctx.inventory, db1, d.name);
}, 900_000);

afterAll(async () => {
  console.log(`sprints 2-3 wall times on the lab (s): ${JSON.stringify(timings)}`);
  await lab?.down();
});

describe('dpgc sprint 2', () => {
  it('gates on sprint 1, deploys etcd, Patroni configs and HAProxy, and passes every criterion', async () => {
    const doc = await sprint(2);
    expect(doc.passed).toBe(true);
    expect(doc.results.map((x) => x.id).sort()).toEqual(
      ['s2.etcd.healthy', 's2.etcd.members', 's2.etcd.replicates', 's2.haproxy.config', 's2.haproxy.running', 's2.patroni.config', 's2.processes', 's2.prometheus.targets', 's2.timings.rto'].sort(),
    );
    expect(doc.results.find((r) => r.id === 's2.timings.rto')?.value).toBe('28.25 s');
    // Patroni is configured, not started: the base instance still serves.
    expect((await sql<{ r: boolean }>('db1', 'SELECT pg_is_in_recovery() AS r'))[0]!.r).toBe(false);
    expect((await (await node('db1')).services.status({ name: 'patroni' })).running).toBe(false);
  });

  it('a second run changes nothing', async () => {
    (await changedOf(sprint(2))).toBe(0);
  });

  it('s2.etcd.healthy and s2.processes fail when a member dies, naming it; a re-run restarts it', async () => {
    const db3 = await node('db3');
    await db3.services.stop({ name: 'etcd' });
    const h = await run(s2('s2.etcd.healthy'));
    expect(h.verdict).toBe('fail');
    expect(h.detail).toContain('http://127.0.30.13:2379');
    expect(h.value).toBe('2/3 healthy');
    const p = await run(s2('s2.processes'));
    expect(p.detail).toMatch(/^etcd is not running on db3/);
    expect(p.remedy).toContain('dpgc sprint 2');
    (await changedOf(sprint(2))).toBe(1);
    expect((await run(s2('s2.etcd.healthy'))).verdict).toBe('pass');
  });

  it('s2.etcd.members fails on a member the inventory does not know', async () => {
    const n = await etcdctlNode(ctx.pool);
    const env = { ETCDCTL_API: '3', PATH: '/usr/bin:/bin' };
    // etcd refuses a membership change ("unhealthy cluster") until every member has been connected for
    // 5 s, and the test before restarted one: ask until it is accepted.
    const add = await waitUntil(
      (seen) =>
        n.host
          .exec(['etcdctl', '-w', 'json', `--endpoints=${clientEndpoints(ctx.inventory).join(',')}`, 'member', 'add', 'intruder', '--learner', '--peer-urls=http://127.0.30.99:2380'], { env })
          .catch((e: Error) => {
            seen(e.message);
            return undefined;
          }),
      { timeoutMs: 30_000, everyMs: 1000 },
      'etcd accepting a new member',
    );
    const id = BigInt(/"ID":(\d+)/.exec(add.stdout)![1]!).toString(16);
    try {
      const r = await run(s2('s2.etcd.members'));
      expect(r.verdict).toBe('fail');
      expect(r.detail).toMatch(/not in the inventory: (intruder|[0-9a-f]+)/);
    } finally {
      await n.host.exec(['etcdctl', `--endpoints=${clientEndpoints(ctx.inventory).join(',')}`, 'member', 'remove', id], { env });
    }
    expect((await run(s2('s2.etcd.members'))).verdict).toBe('pass');
  });

  it('s2.etcd.replicates fails when a member cannot see a write (frozen)', async () => {
    const db3 = await node('db3');
    const st = await db3.services.status({ name: 'etcd' });
    if (!st.running) throw new Error('etcd on db3 not running');
    await db3.host.exec(['kill', '-STOP', String(st.pid)]);
    try {
      const r = await run(s2('s2.etcd.replicates'));
      expect(r.verdict).toBe('fail');
      expect(r.detail).toBe('written through db1, not visible on db3 within 3 s');
    } finally {
      await db3.host.exec(['kill', '-CONT', String(st.pid)]);
    }
  });

  it('s2.patroni.config fails on a readable or edited file; a re-run restores it', async () => {
    const db2 = await node('db2');
    await db2.host.exec(['chmod', '644', db2.paths.patroniConf]);
    const r = await run(s2('s2.patroni.config'));
    expect(r.verdict).toBe('fail');
    expect(r.detail).toContain('db2: /');
    expect(r.detail).toContain('is mode/owner 644 postgres, want 600 postgres (it holds passwords)');
    await db2.host.exec(['sh', '-c', 'chmod 600 "$1" && echo "bogus: [" >> "$1"', 'sh', db2.paths.patroniConf]);
    const r2 = await run(s2('s2.patroni.config'));
    expect(r2.detail).toContain('differs from what the inventory renders');
    expect(r2.detail).toContain('rejected by `patroni`');
    (await changedOf(sprint(2))).toBe(1);
    expect((await run(s2('s2.patroni.config'))).verdict).toBe('pass');
  });

  it('s2.timings.rto fails when the worst case exceeds the budget, with the arithmetic', async () => {
    const text = await readFile(lab.config, 'utf8');
    await writeFile(lab.config, `${text}timings:\n  profile: balanced\n  rto_budget_s: 12\n`);
    try {
      const r = await lab.cli(['--json', 'verify', '--sprint', '2']);
      expect(r.code).toBe(1);
      const t = (JSON.parse(r.stdout) as SprintDoc).results.find((x) => x.id === 's2.timings.rto')!;
      expect(t).toMatchObject({ verdict: 'fail', value: '28.25 s' });
      expect(t.detail).toBe('profile balanced: ttl 20 + etcd leader loss 4 + loop_wait 1 + promotion 3 + HAProxy rise 0.25 = 28.25s exceeds the budget of 12 s');
    } finally {
      await writeFile(lab.config, text);
    }
  });

  it('s2.haproxy.config and s2.haproxy.running fail on a broken file and a dead daemon; a re-run repairs both', async () => {
    const ctl = await node('ctl');
    const good = (await ctl.host.readFile(ctl.paths.haproxyCfg))!;
    await ctl.host.writeFile(ctl.paths.haproxyCfg, `${good}\nlisten broken\n    balance nonsense\n`, { mode: 0o600, owner: 'haproxy' });
    const c = await run(s2('s2.haproxy.config'));
    expect(c.verdict).toBe('fail');
    expect(c.detail).toContain('differs from what the inventory renders');
    expect(c.detail).toContain('balance only supports');
    await ctl.services.stop(haproxyService(ctx.inventory, ctl, await haproxyUser(ctl)));
    const r = await run(s2('s2.haproxy.running'));
    expect(r.verdict).toBe('fail');
    expect(r.detail).toMatch(/^haproxy is not running on ctl/);
    (await changedOf(sprint(2))).toBe(2);
    expect((await run(s2('s2.haproxy.config'))).verdict).toBe('pass');
    expect((await run(s2('s2.haproxy.running'))).verdict).toBe('pass');
  });
});

/** The leader's name once the same member has led for three reads in a row, a second apart. */
async function stableLeader(): Promise<string> {
  let last = '';
  let same = 0;
  return waitUntil(
    async () => {
      const l = await currentLeader(ctx.inventory).then((h) => h.name).catch(() => '');
      same = l && l === last ? same + 1 : 0;
      last = l;
      return same >= 2 ? l : undefined;
    },
    { timeoutMs: 90_000, everyMs: 1000 },
    'one leader that stays',
  );
}

/** `patronictl reinit` of `member` until the leader sees it stream (at most three times); the member's logs in the failure. */
async function reinitUntilStreaming(leader: string, member: string): Promise<void> {
  const ln = await node(leader);
  const streams = async () => (await replicationRows(ctx.inventory, ctx.secrets, ctx.pool.spec(leader))).some((r) => r.application_name === member && r.state === 'streaming');
  for (let attempt = 1; attempt <= 3; attempt++) {
    await ln.host.exec(['patronictl', '-c', ln.paths.patroniConf, 'reinit', 'dpgc-lab', member, '--force', '--wait'], { timeoutMs: 300_000 }).catch((e: Error) => console.log(`reinit ${member} (attempt ${attempt}): ${e.message}`));
    const ok = await waitUntil(async () => ((await streams().catch(() => false)) ? true : undefined), { timeoutMs: 60_000, everyMs: 1000 }, `${member} streaming`).catch(() => false);
    if (ok) return;
  }
  const m = await node(member);
  const tail = async (f: string) => (await m.host.exec(['tail', '-n', '40', f]).catch((e: Error) => ({ stdout: e.message }))).stdout;
  throw new Error(`${member} does not stream from ${leader} after three reinits\n--- patroni.log\n${await tail(`${m.paths.logDir}/patroni.log`)}\n--- postgresql log\n${await tail(m.paths.pgLog)}`);
}

describe('dpgc sprint 3', () => {
  it('takes over the sprint-0 instance (same system identifier, same data), adds two replicas, and passes every criterion', async () => {
    const doc = await sprint(3);
    expect(doc.passed, JSON.stringify(doc.results.filter((r) => r.verdict !== 'pass'))).toBe(true);
    expect(doc.results.map((x) => x.id).sort()).toEqual(
      [
        's3.data.identical',
        's3.etcd.healthy',
        's3.patroni.leader-key',
        's3.patroni.registered',
        's3.patroni.watchdog',
        's3.patroni.topology',
        's3.pgbouncer.primary',
        's3.postgres.settings',
        's3.processes',
        's3.prometheus.targets',
        's3.replication.lag',
        's3.routing.primary',
        's3.routing.replicas',
        's3.system.identifier',
        's3.timeline.history',
        's3.timings.rto',
        's3.vector.everywhere',
      ].sort(),
    );
    console.log(`replication lag p99: ${doc.results.find((r) => r.id === 's3.replication.lag')?.value}`);
    expect(await dcsInitializeKey(ctx.inventory, ctx.pool)).toBe(sysidBefore);
    for (const h of ['db1', 'db2', 'db3']) expect(await systemIdentifier(await node(h))).toBe(sysidBefore);
    // Every row and index sprint 0 wrote, on every node.
    for (const h of ctx.inventory.hosts.filter((x) => x.roles.includes('postgres'))) {
      for (const d of Object.values(DATABASES)) expect(await dataFingerprint(ctx.secrets, ctx.inventory, h, d.name)).toEqual(dataBefore[d.name]);
    }
    const leader = await currentLeader(ctx.inventory);
    expect(leader.name).toBe('db1');
    const cfg = (await rest<Record<string, unknown>>(restTarget(ctx.inventory, leader), 'GET', '/config')).body;
    expect(cfg).toMatchObject({ ttl: 20, loop_wait: 1, retry_timeout: 6, synchronous_mode: true, synchronous_node_count: 1, postgresql: { use_pg_rewind: true, use_slots: true } });
    const slots = await sql<{ slot_name: string; active: boolean }>('db1', 'SELECT slot_name, active FROM pg_replication_slots ORDER BY 1');
    expect(slots).toEqual([{ slot_name: 'db2', active: true }, { slot_name: 'db3', active: true }]);
  });

  it('a second run of sprints 2 and 3 changes nothing (Patroni dynamic config included)', async () => {
    (await changedOf(sprint(2))).toBe(0);
    (await changedOf(sprint(3))).toBe(0);
  });

  it('dpgc status shows every member, etcd, HAProxy and PgBouncer; --watch refreshes', async () => {
    const r = await lab.cli(['--json', 'status']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v.leader).toBe('db1');
    expect(v.members.map((m: { name: string; role: string }) => m.name)).toEqual(['db1', 'db2', 'db3']);
    for (const m of v.members.filter((x: { name: string }) => x.name !== 'db1')) {
      // Patroni 4 calls a streaming replica `streaming` (3.x said `running`).
      expect(m).toMatchObject({ state: 'streaming', replication: 'streaming', timeline: 2 });
      expect(typeof m.lagBytes).toBe('number');
      expect(typeof m.lagSeconds).toBe('number');
    }
    expect(v.members.filter((m: { syncState?: string }) => m.syncState === 'sync')).toHaveLength(1);
    expect(v.etcd.endpoints.every((e: { health: boolean }) => e.health)).toBe(true);
    expect(['db1', 'db2', 'db3']).toContain(v.etcd.leader);
    expect(upServers(v.haproxy[0].servers, 'primary')).toEqual(['db1']);
    expect(v.pgbouncer[0].pools.map((p: { database: string }) => p.database)).toContain('distributed_postgres_cluster_ro');
    expect(v.problems).toEqual([]);
    const human = await lab.cli(['status']);
    expect(human.stderr).toMatch(/db2\s+127\.0\.30\.12\s+(sync_standby|replica)\s+streaming\/streaming\s+2/);
    expect(human.stderr).toContain('No problems found.');
    const w = await lab.cli(['--json', 'status', '--watch', '1'], { timeoutMs: 20_000 });
    expect(w.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(2);
  });

  it('a dynamic-config change in the inventory reaches the running cluster through PATCH /config', async () => {
    const text = await readFile(lab.config, 'utf8');
    const setting = async () => (await sql<{ synchronous_commit: string }>('db2', 'SHOW synchronous_commit'))[0]!.synchronous_commit;
    const eventually = async (want: string) => {
      for (let i = 0; i < 20 && (await setting()) !== want; i++) await new Promise((r) => setTimeout(r, 500));
      expect(await setting()).toBe(want);
    };
    await writeFile(lab.config, `${text}postgres:\n  synchronous_commit: remote_apply\n`);
    try {
      (await changedOf(sprint(2))).toBe(1); // db1's bootstrap.dcs section, re-rendered
      (await changedOf(sprint(3))).toBe(1); // PATCH /config
      await eventually('remote_apply');
      (await changedOf(sprint(3))).toBe(0);
    } finally {
      await writeFile(lab.config, text);
    }
    (await changedOf(sprint(2))).toBe(1);
    (await changedOf(sprint(3))).toBe(1);
    await eventually('on');
  });

  it('a dead Patroni fails s3.patroni.topology, s3.patroni.registered and s3.processes; verify and status name the host and what to do', async () => {
    const db3 = await node('db3');
    await db3.services.stop(patroniService(ctx.inventory, db3));
    const t = await run(s3('s3.patroni.topology'));
    expect(t.verdict).toBe('fail');
    expect(t.detail).toContain('db3 is not replicating from the leader db1');
    const v = await lab.cli(['--json', 'verify', '--sprint', '3']);
    expect(v.code).toBe(1);
    const proc = (JSON.parse(v.stdout) as SprintDoc).results.find((x) => x.id === 's3.processes')!;
    expect(proc.detail).toMatch(/^patroni is not running on db3/);
    const st = await lab.cli(['status']);
    expect(st.code).toBe(1);
    expect(st.stderr).toMatch(/✖ patroni is not running on db3/);
    expect(st.stderr).toMatch(/→ Read .*patroni\.log on db3, then run `dpgc sprint 3`/);
    // A member whose Patroni does not answer cannot prove it has the leader-key fix.
    const lk = await run(s3('s3.patroni.leader-key'));
    expect(lk).toMatchObject({ verdict: 'fail', value: '4.0.7, unknown', threshold: '≥ 3.0.3 on every member' });
    expect(lk.detail).toMatch(/^Patroni \(no answer\) on db3: /);
    // Its member key expires with its lease (ttl).
    const deadline = Date.now() + 20_000;
    let reg = await run(s3('s3.patroni.registered'));
    while (reg.verdict === 'pass' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      reg = await run(s3('s3.patroni.registered'));
    }
    expect(reg.detail).toBe(`not registered under ${PATRONI_NAMESPACE}dpgc-lab/members/: db3`);
    (await changedOf(sprint(3))).toBe(1);
  });

  it('s3.replication.lag and s3.data.identical fail while a replica does not replay', async () => {
    // Patroni resumes a paused replay, so freeze db3's startup (recovery) process instead.
    const db3 = await node('db3');
    const pid = (await sql<{ pid: number }>('db3', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'"))[0]!.pid;
    await db3.host.exec(['kill', '-STOP', String(pid)]);
    try {
      await sql('db1', 'CREATE TABLE IF NOT EXISTS public.lag_witness(x int); INSERT INTO public.lag_witness VALUES (1)', DATABASES.project.name);
      const lag = await run(s3('s3.replication.lag'));
      expect(lag.verdict).toBe('fail');
      expect(lag.value).toBe('markers lost');
      expect(lag.detail).toContain('db3 p99 NaN ms, 20 markers never seen');
      const data = await run(s3('s3.data.identical'));
      expect(data.verdict).toBe('fail');
      expect(data.detail).toMatch(/^still replaying: db3; db3\/distributed_postgres_cluster: table public\.lag_witness is missing, leader has 1 rows/);
    } finally {
      await db3.host.exec(['kill', '-CONT', String(pid)]);
    }
    await sql('db1', 'DROP TABLE public.lag_witness', DATABASES.project.name);
  });

  it('s3.routing.primary and s3.routing.replicas fail when HAProxy sends traffic to the wrong member', async () => {
    await socket('disable server primary/db1');
    const p = await run(s3('s3.routing.primary'));
    expect(p.verdict).toBe('fail');
    expect(p.detail).toMatch(/cannot connect|primary backend has no server UP/);
    await socket('enable server primary/db1');
    await waitForPrimaryRoute(await node('ctl'), { expect: 'db1' });
    // Replicas port: health checks off for db1 there and forced up, the real replicas in maintenance.
    await socket('disable health replicas/db1');
    await socket('set server replicas/db1 health up');
    await socket('disable server replicas/db2');
    await socket('disable server replicas/db3');
    try {
      const r = await run(s3('s3.routing.replicas'));
      expect(r.verdict).toBe('fail');
      expect(r.detail).toBe(':5001 landed on the primary db1');
    } finally {
      for (const c of ['enable server replicas/db2', 'enable server replicas/db3', 'enable health replicas/db1']) await socket(c);
    }
    await new Promise((r) => setTimeout(r, 3000));
    expect((await run(s3('s3.routing.replicas'))).verdict).toBe('pass');
  });

  it('s3.pgbouncer.primary fails when PgBouncer points at a replica; a re-run re-points it at HAProxy', async () => {
    const db3 = ctx.pool.spec('db3');
    const backends = Object.values(DATABASES).flatMap((d) => [
      { alias: d.name, host: db3.address, port: ctx.inventory.ports.postgres, dbname: d.name },
      { alias: `${d.name}_ro`, host: db3.address, port: ctx.inventory.ports.postgres, dbname: d.name },
    ]);
    await ensurePgbouncer(ctx, await node('ctl'), backends);
    const r = await run(s3('s3.pgbouncer.primary'));
    expect(r.verdict).toBe('fail');
    expect(r.detail).toContain('distributed_postgres_cluster landed on db3, not the leader db1');
    (await changedOf(sprint(3))).toBe(1);
    expect((await run(s3('s3.pgbouncer.primary'))).verdict).toBe('pass');
  });

  it('routing and scrape targets come from the live cluster: a corrupt or missing state file changes neither', async () => {
    const stateFile = lab.config.replace(/\.yaml$/, '.state.json');
    const saved = await readFile(stateFile, 'utf8');
    try {
      for (const text of ['{"sprints":', undefined]) {
        if (text === undefined) await rm(stateFile);
        else await writeFile(stateFile, text);
        expect(await pgbouncerTargets(ctx)).toEqual(haproxyBackends(ctx.inventory));
        expect(await monitoredSprint(ctx, 1)).toBe(3);
        // Sprint 1 re-run on that cluster keeps PgBouncer on HAProxy and every scrape target.
        const r = await lab.cli(['--yes', 'sprint', '1', '--force']);
        expect(r.code, r.stderr).toBe(0);
        expect((await run(s3('s3.pgbouncer.primary'))).verdict).toBe('pass');
      }
    } finally {
      await writeFile(stateFile, saved);
    }
  });

  it('s3.system.identifier fails when the DCS records another system', async () => {
    // The leader's Patroni rewrites a malformed initialize key within a loop: hold it still meanwhile (well under ttl).
    const db1 = await node('db1');
    // The daemon itself, not the lab's restart loop around it.
    const pid = { pid: (await postgresProcesses(db1)).patroni! };
    const key = `${PATRONI_NAMESPACE}dpgc-lab/initialize`;
    const url = clientUrl(ctx.inventory, ctx.pool.spec('db2'));
    await db1.host.exec(['kill', '-STOP', String(pid.pid)]);
    try {
      await putKey(await etcdctlNode(ctx.pool), url, key, 'not-this-cluster');
      const r = await run(s3('s3.system.identifier'));
      expect(r.verdict).toBe('fail');
      expect(r.detail).toMatch(new RegExp(`^the DCS records not-this-cluster; db1 has ${sysidBefore}, db2 has ${sysidBefore}, db3 has ${sysidBefore}$`));
    } finally {
      await putKey(await etcdctlNode(ctx.pool), url, key, sysidBefore);
      await db1.host.exec(['kill', '-CONT', String(pid.pid)]);
    }
    expect((await run(s3('s3.system.identifier'))).verdict).toBe('pass');
  });

  it('s3.patroni.leader-key passes: every member runs a Patroni with the fix (4.x from Debian 13 on Debian 12), read from the running daemons', async () => {
    const r = await run(s3('s3.patroni.leader-key'));
    expect(r).toMatchObject({ verdict: 'pass', threshold: '≥ 3.0.3 on every member' });
    expect(r.value).toMatch(/^4\.\d+\.\d+$/);
  });

  it('s3.patroni.watchdog says the lab has no watchdog (a warning), and fails when the inventory requires one', async () => {
    const r = await run(s3('s3.patroni.watchdog'));
    expect(r).toMatchObject({ verdict: 'warn', value: 'automatic, 3 problem(s)' });
    expect(r.detail).toBe('db1: no /dev/watchdog; db2: no /dev/watchdog; db3: no /dev/watchdog: a primary that hangs past ttl is resumed, not reset');
    const text = await readFile(lab.config, 'utf8');
    await writeFile(lab.config, `${text}patroni:\n  watchdog: required\n`);
    try {
      const req = await s3('s3.patroni.watchdog').run(await lab.context());
      expect(req.verdict).toBe('fail');
    } finally {
      await writeFile(lab.config, text);
    }
  });

  it('s3.timings.rto fails when the running Patroni applies other timings than the inventory; a paused cluster fails s3.patroni.topology and status, and a pause an interrupted dpgc run left is named as such; sprint 3 converges the timings and resumes that pause, never an operator\'s', async () => {
    const leader = await currentLeader(ctx.inventory);
    const auth = { username: 'patroni', password: await ctx.secrets.get('patroni_rest') };
    const patch = async (body: Record<string, unknown>) => expect((await rest(restTarget(ctx.inventory, leader), 'PATCH', '/config', { body, auth })).status).toBe(200);
    await patch({ ttl: 25 });
    const t = await run(s3('s3.timings.rto'));
    expect(t.verdict).toBe('fail');
    expect(t.detail).toBe('Patroni runs with ttl 25, loop_wait 1, retry_timeout 6; the inventory asks for 20, 1, 6');
    // The operator's maintenance mode: everything looks whole, and nothing would fail over.
    await patch({ pause: true });
    const paused = await run(s3('s3.patroni.topology'));
    expect(paused.verdict).toBe('fail');
    expect(paused.detail).toContain('the cluster is paused (maintenance mode): Patroni will not fail over until it is resumed (`patronictl');
    const st = await lab.cli(['--json', 'status']);
    expect(st.code).toBe(1);
    expect(st.stdout).toContain('the cluster is paused (maintenance mode)');
    // Sprint 3's convergence would set the timings and leave the operator's pause alone.
    expect((await observeDynamicConfig(ctx.inventory)).would).toEqual([`PATCH ${leader.name} /config {"ttl":20}`]);
    // What a sprint 5 killed between its pause and its resume leaves: the pause and dpgc's record, in one PATCH.
    await patch({ pause: true, [PAUSED_BY_DPGC]: "sprint 5's switch of etcd to TLS, by dpgc elsewhere:4242 at 2026-12-08T03:00:00.000Z" });
    const left = await run(s3('s3.patroni.topology'));
    expect(left.detail).toContain("An interrupted dpgc run left it so (sprint 5's switch of etcd to TLS, by dpgc elsewhere:4242");
    expect((await observeDynamicConfig(ctx.inventory)).would).toEqual([`PATCH ${leader.name} /config {"ttl":20,"pause":null,"${PAUSED_BY_DPGC}":null}`]);
    (await changedOf(sprint(3))).toBe(1);
    const after = await run(s3('s3.timings.rto'));
    expect(after.verdict, after.detail).toBe('pass');
    expect(after.detail).toContain('(as the running Patroni applies it)');
    const resumed = await rest<Record<string, unknown>>(restTarget(ctx.inventory, leader), 'GET', '/config');
    expect(resumed.body).not.toHaveProperty('pause');
    expect(resumed.body).not.toHaveProperty(PAUSED_BY_DPGC);
    expect((await run(s3('s3.patroni.topology'))).verdict).toBe('pass');
  });

  it('s3.timings.rto fails on a budget the settings cannot meet', async () => {
    const text = await readFile(lab.config, 'utf8');
    await writeFile(lab.config, `${text}timings:\n  rto_budget_s: 28\n`);
    try {
      const c = await lab.context();
      const r = await s3('s3.timings.rto').run(c);
      expect(r).toMatchObject({ verdict: 'fail', value: '28.25 s', threshold: '≤ 28 s' });
    } finally {
      await writeFile(lab.config, text);
    }
  });

  it('a planned switchover through dpgc changes the leader, HAProxy follows, and writes through PgBouncer continue', async () => {
    await sql('db1', 'CREATE TABLE IF NOT EXISTS public.switchover_probe(id bigserial PRIMARY KEY, at timestamptz DEFAULT now()); GRANT INSERT, SELECT ON public.switchover_probe TO dpg_cluster; GRANT USAGE ON SEQUENCE public.switchover_probe_id_seq TO dpg_cluster', DATABASES.project.name);
    const ep = { name: 'ctl', address: ctx.pool.spec('ctl').address, port: ctx.inventory.ports.pgbouncer, database: DATABASES.project.name, user: DATABASES.project.owner, secret: DATABASES.project.secret } as const;
    let stop = false;
    const acked: number[] = [];
    let errors = 0;
    const writer = (async () => {
      while (!stop) {
        try {
          const c = await connect(ctx.secrets, ep, { timeoutMs: 2000 });
          try {
            while (!stop) {
              await c.query('INSERT INTO public.switchover_probe DEFAULT VALUES');
              acked.push(Date.now());
              await new Promise((r) => setTimeout(r, 20));
            }
          } finally {
            await c.end().catch(() => {});
          }
        } catch {
          errors++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    const sw = await switchover(ctx.inventory, ctx.secrets);
    expect(sw.from).toBe('db1');
    expect(['db2', 'db3']).toContain(sw.to);
    expect((await currentLeader(ctx.inventory)).name).toBe(sw.to);
    await waitForPrimaryRoute(await node('ctl'), { expect: sw.to, timeoutMs: 30_000 });
    const before = acked.length;
    await new Promise((r) => setTimeout(r, 3000));
    stop = true;
    await writer;
    expect(acked.length).toBeGreaterThan(before + 10);
    const gaps = acked.slice(1).map((t, i) => t - acked[i]!);
    console.log(`switchover ${sw.from} → ${sw.to} in ${sw.durationMs} ms; longest write gap through PgBouncer ${Math.max(...gaps)} ms, ${errors} failed attempts`);
    const rows = await sql<{ n: string }>(sw.to, 'SELECT count(*)::text AS n FROM public.switchover_probe', DATABASES.project.name);
    expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(acked.length);
    expect(upServers(await showStat(await node('ctl')), 'primary')).toEqual([sw.to]);
    // The whole of sprint 3 holds with the new leader once the old primary and
    // the other replica stream from it again (that takes a loop or two, so wait
    // for convergence rather than measure a moment in the middle of it).
    await waitForHealthyCluster(ctx.inventory, ctx.secrets, { timeoutMs: 90_000 });
    const v = await lab.cli(['--json', 'verify', '--sprint', '3']);
    expect(v.code, v.stdout).toBe(0);
  });

  it('s3.timeline.history fails after writes were acknowledged on a timeline the cluster abandoned; re-clone and a switchover repair it', async () => {
    // The effect of patroni/patroni#2689, made on purpose: the leader hangs, another member is promoted
    // and acknowledges writes, then the hung leader's key is written back before it wakes.
    const inv = ctx.inventory;
    await waitForHealthyCluster(inv, ctx.secrets, { timeoutMs: 120_000 });
    const old = await currentLeader(inv);
    const oldNode = await node(old.name);
    // Patroni and PostgreSQL, not the lab's restart loop around Patroni: the host hangs, nothing restarts.
    const pids = allPids(await postgresProcesses(oldNode));
    await oldNode.host.exec(['kill', '-STOP', ...pids]);
    // The other members' Patroni daemons (not their PostgreSQL) are held still from the moment the key is
    // written back until the check has looked: otherwise Patroni may demote and rewind every diverged
    // member first, and pg_rewind and Patroni 4's rewrite of its etcd history erase the evidence (README,
    // Known limitations). Their member keys live for ttl (20 s), which is the window the check has.
    const others = ['db1', 'db2', 'db3'].filter((x) => x !== old.name);
    const held: { n: Awaited<ReturnType<typeof node>>; pid: string }[] = [];
    let promoted: string | undefined;
    try {
      try {
        const deadline = Date.now() + 120_000;
        while (!promoted && Date.now() < deadline) {
          promoted = await currentLeader(inv).then((l) => (l.name === old.name ? undefined : l.name)).catch(() => undefined);
          if (!promoted) await new Promise((r) => setTimeout(r, 500));
        }
        expect(promoted, 'a new leader while the old one hangs').toBeDefined();
        await sql(promoted!, 'CREATE TABLE IF NOT EXISTS public.abandoned_witness(x int); INSERT INTO public.abandoned_witness VALUES (1), (2)', DATABASES.project.name);
        for (const name of others) {
          const n = await node(name);
          const daemon = (await postgresProcesses(n)).patroni;
          if (daemon === undefined) continue;
          await n.host.exec(['kill', '-STOP', String(daemon)]);
          held.push({ n, pid: String(daemon) });
        }
        await putKey(await etcdctlNode(ctx.pool), clientUrl(inv, ctx.pool.spec(promoted!)), `${PATRONI_NAMESPACE}dpgc-lab/leader`, old.name);
      } finally {
        await oldNode.host.exec(['kill', '-CONT', ...pids]);
      }
      // Until the woken leader answers as the leader again.
      const deadline = Date.now() + 15_000;
      let r = await run(s3('s3.timeline.history'));
      while (!/was abandoned/.test(r.detail ?? '') && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 500));
        r = await run(s3('s3.timeline.history'));
      }
      expect(r.verdict, r.detail).toBe('fail');
      expect(r.detail).toMatch(/timeline \d+( \(promoted on db\d at [^)]+\))? was abandoned: it branched from timeline \d+ at LSN [0-9A-F]+\/[0-9A-F]+, .*writes acknowledged on it after LSN [0-9A-F]+\/[0-9A-F]+ may be lost/);
      expect(r.detail).toContain(`${promoted} has diverged from the leader ${old.name}`);
      expect(r.remedy).toContain('patronictl reinit dpgc-lab <member>');
    } finally {
      for (const h of held) await h.n.host.exec(['kill', '-CONT', h.pid]);
    }
    // The repair the remedy names: re-clone every member that diverged, then one switchover.
    // The members just let go wake to a leader key that is not theirs and demote; a reinit sent in the
    // middle of that can be overtaken by it (once in CI a member stayed on the abandoned timeline and
    // never streamed). So: one leader that stays, then each member re-cloned until it streams, the way an
    // operator repeats a reinit that did not take.
    const leader = await stableLeader();
    for (const m of ['db1', 'db2', 'db3'].filter((x) => x !== leader)) await reinitUntilStreaming(leader, m);
    await waitForHealthyCluster(inv, ctx.secrets, { timeoutMs: 120_000 });
    await switchover(inv, ctx.secrets);
    await waitForHealthyCluster(inv, ctx.secrets, { timeoutMs: 120_000 });
    const after = await run(s3('s3.timeline.history'));
    expect(after.verdict, after.detail).toBe('pass');
    // What the check warned about: the writes acknowledged on the abandoned timeline are gone.
    const witness = await sql<{ n: string }>((await currentLeader(inv)).name, "SELECT count(*)::text AS n FROM pg_tables WHERE tablename = 'abandoned_witness'", DATABASES.project.name);
    expect(witness[0]!.n).toBe('0');
  });

  // After the tests that take db1 (the sprint-0 base) as the leader: a rolling restart moves it.
  it('s3.postgres.settings: every member runs the sized settings; a PATCH of Patroni’s configuration is named on every member, and sprint 3 converges it back', async () => {
    const settings = async () => {
      const v = JSON.parse((await lab.cli(['--json', 'verify', '--sprint', '3', '--quick'])).stdout) as { results: { id: string; verdict: string; detail?: string }[] };
      return v.results.find((x) => x.id === 's3.postgres.settings')!;
    };
    expect((await settings()).verdict).toBe('pass');
    const leader = await currentLeader(ctx.inventory);
    const auth = { username: REST_USER, password: await ctx.secrets.get('patroni_rest') };
    const p = await rest(restTarget(ctx.inventory, leader), 'PATCH', '/config', { body: { postgresql: { parameters: { effective_cache_size: '1GB' } } }, auth });
    expect(p.status).toBe(200);
    const ecs = async (h: string) => (await sql<{ v: string }>(h, "SELECT current_setting('effective_cache_size') AS v"))[0]!.v;
    await waitUntil(async () => ((await Promise.all(['db1', 'db2', 'db3'].map(ecs))).every((v) => v === '1GB') ? true : undefined), { timeoutMs: 20_000, everyMs: 500 }, 'the PATCH applied');
    const drifted = await settings();
    expect(drifted.verdict).toBe('fail');
    for (const h of ['db1', 'db2', 'db3']) expect(drifted.detail).toMatch(new RegExp(`${h}: effective_cache_size is 1GB, dpgc computed \\d+MB \\(profile\\)`));
    const r = await sprint(3);
    expect(r.changedTasks!.join('\n')).toMatch(/Converge Patroni’s dynamic configuration.*\(changed, set postgresql\.parameters\.effective_cache_size\)/);
    expect((await settings()).verdict).toBe('pass');
  });

  it('a restart-requiring settings change rolls through the members, one switchover, and a second run changes nothing', async () => {
    const text = await readFile(lab.config, 'utf8');
    await writeFile(lab.config, `${text}postgres:\n  settings:\n    work_mem: 32MB\n    shared_buffers: 256MB\n`);
    const r = await sprint(3);
    expect(r.changedTasks!.join('\n')).toMatch(/Restart members whose new settings wait for a restart.*\(changed, restarted db\d; restarted db\d; switchover db\d → db\d in [\d.]+ s; restarted db\d\)/);
    for (const h of ['db1', 'db2', 'db3']) expect((await sql<{ v: string }>(h, "SELECT current_setting('shared_buffers') AS v"))[0]!.v).toBe('256MB');
    (await changedOf(sprint(3))).toBe(0);
    // The settings stay: undoing them would cost another rolling restart, and nothing later depends on them.
  });

  it('s3.vector.everywhere fails when the extension is gone (destructive: last)', async () => {
    await waitForHealthyCluster(ctx.inventory, ctx.secrets, { timeoutMs: 120_000 });
    const leader = await currentLeader(ctx.inventory);
    await sql(leader.name, 'DROP EXTENSION vector CASCADE', DATABASES.shared.name);
    // The DROP is acknowledged once a sync standby has flushed it, not replayed it: give the replicas a moment.
    const all = 'vector missing in db1/claude_flow_shared, db2/claude_flow_shared, db3/claude_flow_shared';
    const deadline = Date.now() + 10_000;
    let r = await run(s3('s3.vector.everywhere'));
    while (r.detail !== all && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 250));
      r = await run(s3('s3.vector.everywhere'));
    }
    expect(r.verdict).toBe('fail');
    expect(r.detail).toBe(all);
  });
});
