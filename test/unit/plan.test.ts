import { describe, expect, it } from 'vitest';
import type { Client } from '../../src/db/client.js';
import { describeStatement, observing } from '../../src/db/observing.js';
import type { RunContext } from '../../src/context.js';
import type { Node } from '../../src/hosts/pool.js';
import { silentLogger } from '../../src/output/log.js';
import { formatPlan, observePlan } from '../../src/plan/plan.js';
import { notYetReachable, sqlStep } from '../../src/plan/sql.js';
import { leaves, onHost, parallel, sequence, twoWay, type PlanNode } from '../../src/plan/step.js';
import { HostError } from '../../src/errors.js';
import { runStep } from '../../src/tasks/run.js';
import { sprint0 } from '../../sprints/sprint-0.js';
import { sprint1 } from '../../sprints/sprint-1.js';
import { sprint2 } from '../../sprints/sprint-2.js';
import { sprint3 } from '../../sprints/sprint-3.js';
import { labInv } from '../helpers/lab-inventory.js';

/**
 * The plan as data, on an inventory without a cluster: building a sprint's
 * plan touches no host, an observation never applies, and SQL is observed by
 * a connection that lets only reads through.
 */

/** A host that records every call and answers like an empty machine. */
function recordingHost() {
  const calls: string[] = [];
  return {
    calls,
    host: {
      dryRun: true,
      exec: async (argv: string[]) => (calls.push(`exec ${argv.join(' ')}`), { stdout: '', stderr: '', exitCode: 0, durationMs: 0 }),
      writeFile: async (path: string) => (calls.push(`write ${path}`), { path, changed: true }),
    },
  };
}

function fakeCtx(onNode: (name: string) => void = () => {}): RunContext {
  const inventory = labInv();
  const pool = {
    specs: (role?: string) => inventory.hosts.filter((h) => !role || h.roles.includes(role as never)),
    node: async (name: string): Promise<Node> => {
      onNode(name);
      throw new Error(`a plan's construction must not reach ${name}`);
    },
  };
  return {
    inventory,
    secrets: { get: async () => 'secret' } as unknown as RunContext['secrets'],
    pool: pool as unknown as RunContext['pool'],
    logger: silentLogger,
    options: { config: inventory.file, json: false, yes: true, dryRun: true, verbose: false, acceptNewHostKeys: false, nonInteractive: true },
  };
}

describe('a sprint plan is data', () => {
  const sprints = [sprint0, sprint1, sprint2, sprint3];

  it.each(sprints.map((s) => [s.id, s] as const))('building sprint %i’s plan reaches no host', (_id, s) => {
    const reached: string[] = [];
    const steps = leaves(s.tasks(fakeCtx((n) => reached.push(n))));
    expect(steps.length).toBeGreaterThan(3);
    expect(reached).toEqual([]);
    for (const st of steps) expect(['file', 'command', 'package', 'sql', 'rest', 'service', 'wait']).toContain(st.kind);
  });

  it('every catalog change of sprint 0 is an SQL step, observable without a server', () => {
    const steps = leaves(sprint0.tasks(fakeCtx()));
    const sql = steps.filter((s) => s.kind === 'sql').map((s) => s.title);
    expect(sql).toEqual([
      'Create the login role dpg_cluster on db1',
      'Create the database distributed_postgres_cluster owned by dpg_cluster',
      'Create the login role shared_user on db1',
      'Create the database claude_flow_shared owned by shared_user',
      'Create the pgvector extension in distributed_postgres_cluster',
      'Apply schema migrations to distributed_postgres_cluster',
      'Ensure the HNSW indexes in distributed_postgres_cluster',
      'Set the HNSW search breadth (ef_search 100) for distributed_postgres_cluster',
      'Create the pgvector extension in claude_flow_shared',
      'Apply schema migrations to claude_flow_shared',
      'Ensure the HNSW indexes in claude_flow_shared',
      'Set the HNSW search breadth (ef_search 100) for claude_flow_shared',
    ]);
  });

  it('sprint 3 converges Patroni’s dynamic configuration through REST, and its waits are waits', () => {
    const steps = leaves(sprint3.tasks(fakeCtx()));
    expect(steps.find((s) => s.title.startsWith('Converge Patroni'))?.kind).toBe('rest');
    expect(steps.filter((s) => s.kind === 'wait').map((s) => s.title)).toContain('Wait until every replica streams and a synchronous standby is assigned');
  });
});

describe('observing and applying', () => {
  function counted(kind: 'file' | 'sql') {
    const n = { observe: 0, apply: 0 };
    const step = twoWay(kind, `a ${kind} step`, 'db1', {
      observe: async () => (n.observe++, { changed: true, note: 'would', would: ['run X'] }),
      apply: async () => (n.apply++, true),
    });
    return { n, step };
  }

  it('an observed plan never applies, in plan order through groups', async () => {
    const a = counted('file');
    const b = counted('sql');
    const plan: PlanNode[] = [sequence('one', [a.step]), parallel('two', [b.step])];
    const out = await observePlan(plan, silentLogger);
    expect(out.map((o) => o.title)).toEqual(['a file step', 'a sql step']);
    expect(out.every((o) => o.changed)).toBe(true);
    expect([a.n, b.n]).toEqual([{ observe: 1, apply: 0 }, { observe: 1, apply: 0 }]);
  });

  it('an applied step never observes, and what it would send is printed only when observing', async () => {
    const a = counted('sql');
    const printed: string[] = [];
    expect(await runStep(a.step, 'apply', { dry: (m) => printed.push(m) })).toMatchObject({ changed: true, kind: 'sql', host: 'db1' });
    expect(a.n).toEqual({ observe: 0, apply: 1 });
    expect(printed).toEqual([]);
    await runStep(a.step, 'observe', { dry: (m) => printed.push(m) });
    expect(printed).toEqual(['db1: would run X']);
  });

  it('a host step observes with the same body, which reaches only the (dry) transport', async () => {
    const { host, calls } = recordingHost();
    const s = onHost('file', 'Write /etc/x on db1', 'db1', async () => (await host.writeFile('/etc/x')).changed);
    expect(await runStep(s, 'observe')).toMatchObject({ changed: true, kind: 'file' });
    expect(calls).toEqual(['write /etc/x']);
  });

  it('a server that cannot be reached yet is a change to come, other errors are errors', async () => {
    expect(await notYetReachable(async () => { throw new HostError('db1: cannot connect'); })).toMatchObject({ changed: true });
    await expect(notYetReachable(async () => { throw new TypeError('bug'); })).rejects.toThrow('bug');
  });

  it('an SQL step against no server plans its change instead of failing', async () => {
    const s = sqlStep('Create the role r on db1', 'db1', {
      secrets: { get: async () => 'pw' },
      endpoint: async () => ({ name: 'db1', address: '127.0.0.1', port: 1, database: 'postgres', user: 'postgres', secret: 'postgres_superuser' }),
      run: async () => { throw new Error('never run without a connection'); },
    });
    const o = await runStep(s, 'observe');
    expect(o.changed).toBe(true);
    expect(o.note).toMatch(/cannot be read yet.*cannot connect/);
  });
});

describe('the observing SQL connection', () => {
  function fakeClient() {
    const sent: string[] = [];
    const client = { query: async (text: string) => (sent.push(text), { rows: [{ x: 1 }], rowCount: 1 }) } as unknown as Client;
    return { client, sent };
  }

  it('lets reads through and records everything else, transaction framing aside', async () => {
    const { client, sent } = fakeClient();
    const o = observing(client);
    expect((await o.client.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
    await o.client.query('BEGIN');
    await o.client.query('SET ROLE app');
    await o.client.query("CREATE ROLE app LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc'");
    await o.client.query('GRANT pg_monitor TO mon');
    await o.client.query('COMMIT');
    expect(sent).toEqual(['SELECT 1 AS x']);
    expect(o.statements).toEqual(["run CREATE ROLE app LOGIN PASSWORD '***'", 'run GRANT pg_monitor TO mon']);
  });

  it('a SELECT with a side effect is not a read', async () => {
    const { client, sent } = fakeClient();
    const o = observing(client);
    await o.client.query('SELECT pg_reload_conf()');
    expect(sent).toEqual([]);
    expect(o.statements).toEqual(['run SELECT pg_reload_conf()']);
  });

  it('long statements are shortened to one line', () => {
    const d = describeStatement(`CREATE TABLE t (\n  a int -- comment\n, b text${' '.repeat(3)}${', c int'.repeat(40)})`);
    expect(d).not.toContain('\n');
    expect(d.length).toBeLessThanOrEqual(164);
  });
});

describe('the plan for humans', () => {
  it('marks what would change and what is done, with the statements', () => {
    const lines = formatPlan({
      sprint: 0,
      title: 'PostgreSQL',
      changes: 1,
      steps: [
        { title: 'Create the role r', kind: 'sql', changed: true, note: 'created', would: ['run CREATE ROLE r'] },
        { title: 'Install x', kind: 'package', changed: false },
      ],
    });
    expect(lines).toEqual([
      'Plan for sprint 0 (PostgreSQL):',
      '  ~ Create the role r (created)',
      '      would run CREATE ROLE r',
      '  = Install x',
      '1 steps would change something, 1 are already done.',
    ]);
  });
});
