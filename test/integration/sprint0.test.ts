import { createServer, type Server } from 'node:net';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { searchMemory, storeMemory } from '../../src/app/memory.js';
import { embeddingGenerator } from '../../src/checks/embeddings.js';
import type { CheckOutcome } from '../../src/checks/types.js';
import { appOn, DATABASES, firstPostgres, superuserOn } from '../../src/components/endpoints.js';
import { postgresService } from '../../src/components/postgres.js';
import { EMBEDDING_DIM, extensionName, vectorNames } from '../../src/components/vector.js';
import type { RunContext } from '../../src/context.js';
import { withClient } from '../../src/db/client.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Sprint 0 on a real lab (127.0.10.x): bare hosts to a verified base
 * database, idempotence, and every criterion failing on a cluster broken on
 * purpose, then repaired by re-running sprint 0. Data written at the start
 * must survive all of it.
 */
const SUBNET = '127.0.10';
const DB1 = `${SUBNET}.11`;

interface SprintJson {
  tasks: { changed: number; unchanged: number };
  results: CheckOutcome[];
  passed: boolean;
}

function parseJson<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

function verdicts(results: CheckOutcome[]): Record<string, string> {
  return Object.fromEntries(results.map((r) => [r.id, r.verdict]));
}

async function timed<T>(fn: () => Promise<T>): Promise<{ r: T; seconds: number }> {
  const t = Date.now();
  const r = await fn();
  return { r, seconds: (Date.now() - t) / 1000 };
}

/** verify --sprint 0 --json: exit code and the failing check's detail. */
async function verify(lab: TestLab) {
  const r = await lab.cli(['verify', '--sprint', '0', '--json']);
  const doc = parseJson<{ passed: boolean; results: CheckOutcome[] }>(r.stdout);
  return { code: r.code, doc, byId: (id: string) => doc.results.find((x) => x.id === id)! };
}

const SENTINEL = { namespace: 'sprint0-test', key: 'survivor', value: 'written right after sprint 0' };

async function readSentinel(ctx: RunContext): Promise<string | undefined> {
  return withClient(ctx.secrets, appOn(ctx.inventory, firstPostgres(ctx.inventory), 'project'), async (c) => {
    const names = await vectorNames(ctx.inventory.postgres.vector, (sql, p) => c.query(sql, p));
    const hits = await searchMemory(c, names, { namespace: SENTINEL.namespace, query: embeddingGenerator({ dim: EMBEDDING_DIM, seed: 99 }).next(), limit: 1 });
    return hits[0]?.value;
  });
}

describe('sprint 0 on the local lab', () => {
  let lab: TestLab;
  let ctx: RunContext;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    lab = await createLab(SUBNET);
    ctx = await lab.context();
  });
  afterAll(async () => {
    console.log(`sprint 0 timings (s): ${JSON.stringify(timings)}`);
    await lab?.down();
  });

  it('refuses, changing nothing, while a process dpgc did not start holds the PostgreSQL port', async () => {
    const foreign: Server = createServer();
    await new Promise<void>((resolve) => foreign.listen(5432, DB1, resolve));
    try {
      const r = await lab.cli(['sprint', '0']);
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`port 5432 on ${DB1} is held by node (pid ${process.pid})`);
      expect(r.stderr).toContain('dpgc did not start');
      expect(r.stderr).toMatch(/Nothing was changed/);
      expect(existsSync(`${lab.dir}/lab/db1/var/lib/postgresql/15/main`)).toBe(false);
    } finally {
      await new Promise((resolve) => foreign.close(resolve));
    }
  });

  it('takes bare hosts to a verified base database, every check passing', async () => {
    const { r, seconds } = await timed(() => lab.cli(['sprint', '0', '--json']));
    timings['first run'] = seconds;
    expect(r.code, r.stderr).toBe(0);
    const doc = parseJson<SprintJson>(r.stdout);
    expect(doc.passed).toBe(true);
    expect(doc.tasks.changed).toBeGreaterThan(0);
    expect(doc.results.map((x) => x.id).sort()).toEqual(
      ['s0.connections', 's0.databases', 's0.pg.reachable', 's0.postgres.settings', 's0.schema.hnsw', 's0.schema.tables', 's0.vector.dimension', 's0.vector.ef-search', 's0.vector.extension', 's0.vector.index-memory', 's0.vector.roundtrip'].sort(),
    );
    for (const x of doc.results) expect(x.verdict, `${x.id}: ${x.detail}`).toBe('pass');
    const recall = doc.results.find((x) => x.id === 's0.vector.roundtrip')!;
    console.log(`recall@10: ${recall.value}`);
    expect(Number(String(recall.value).split(' ')[0])).toBeGreaterThanOrEqual(0.95);
    expect(doc.results.find((x) => x.id === 's0.pg.reachable')!.value).toMatch(/^15\.\d+ on db1 127\.0\.10\.11:5432$/);

    // The application path: bound parameters, written once, read back after everything below.
    await withClient(ctx.secrets, appOn(ctx.inventory, firstPostgres(ctx.inventory), 'project'), async (c) => {
      const names = await vectorNames(ctx.inventory.postgres.vector, (sql, p) => c.query(sql, p));
      await storeMemory(c, names, { ...SENTINEL, embedding: embeddingGenerator({ dim: EMBEDDING_DIM, seed: 99 }).next() });
    });
    expect(await readSentinel(ctx)).toBe(SENTINEL.value);
  });

  it('changes nothing on a second run, and still passes', async () => {
    const { r, seconds } = await timed(() => lab.cli(['sprint', '0']));
    timings['second run'] = seconds;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Nothing to change: all \d+ tasks were already done/);
    expect(r.stderr).not.toMatch(/\(changed/);
    const j = parseJson<SprintJson>((await lab.cli(['sprint', '0', '--json'])).stdout);
    expect(j.tasks.changed).toBe(0);
    const v = await verify(lab);
    expect(v.code).toBe(0);
    expect(v.doc.passed).toBe(true);
  });

  it("keeps the database's own files in the data directory, SCRAM only, checksums on", async () => {
    const pgData = `${lab.dir}/lab/db1/var/lib/postgresql/15/main`;
    expect(await readFile(`${pgData}/postgresql.conf`, 'utf8')).toMatch(/^include 'dpgc.conf'$/m);
    const hba = await readFile(`${pgData}/pg_hba.conf`, 'utf8');
    expect(hba).not.toMatch(/^[^#].*\b(trust|md5)\b/m);
    await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory)), async (c) => {
      const s = await c.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('data_checksums', 'password_encryption', 'statement_timeout', 'wal_level', 'listen_addresses')",
      );
      expect(Object.fromEntries(s.rows.map((x) => [x.name, x.setting]))).toEqual({
        data_checksums: 'on',
        password_encryption: 'scram-sha-256',
        statement_timeout: '0',
        wal_level: 'replica',
        listen_addresses: DB1,
      });
      const pw = await c.query<{ rolname: string; ok: boolean }>("SELECT rolname, rolpassword LIKE 'SCRAM-SHA-256$%' AS ok FROM pg_authid WHERE rolname IN ('dpg_cluster', 'shared_user')");
      expect(pw.rows.every((x) => x.ok)).toBe(true);
    });
  });

  it('reloads for a reloadable setting and restarts only for one that needs it', async () => {
    const node = await ctx.pool.node('db1');
    const pidBefore = await node.services.status(postgresService(node, ctx.inventory));
    const setSettings = async (settings: Record<string, string>) => {
      const doc = parse(await readFile(lab.config, 'utf8')) as { postgres?: { settings?: Record<string, string> } };
      doc.postgres = { ...(doc.postgres ?? {}), settings };
      await writeFile(lab.config, stringify(doc));
    };
    await setSettings({ work_mem: '8MB' });
    let r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Start PostgreSQL on db1.*\(changed, reloaded\)/);
    expect(await node.services.status(postgresService(node, ctx.inventory))).toEqual(pidBefore);

    await setSettings({ work_mem: '8MB', shared_buffers: '64MB' });
    r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Start PostgreSQL on db1.*\(changed, restarted for shared_buffers\)/);
    expect(await node.services.status(postgresService(node, ctx.inventory))).not.toEqual(pidBefore);

    r = await lab.cli(['sprint', '0']);
    expect(r.stderr).toMatch(/Nothing to change/);
  });

  it('fails s0.schema.hnsw when an HNSW index is dropped, and sprint 0 recreates it', async () => {
    await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory), DATABASES.shared.name), (c) =>
      c.query('DROP INDEX claude_flow.embeddings_embedding_hnsw'),
    );
    const v = await verify(lab);
    expect(v.code).toBe(1);
    expect(v.byId('s0.schema.hnsw').verdict).toBe('fail');
    expect(v.byId('s0.schema.hnsw').detail).toBe('claude_flow_shared: claude_flow.embeddings_embedding_hnsw missing');
    // verify --quick reads state only (no round trip, no clients): it sees the missing index too, in seconds.
    const quick = async () => {
      const q = await lab.cli(['verify', '--sprint', '0', '--quick', '--json']);
      return { code: q.code, doc: parseJson<{ quick: boolean; results: CheckOutcome[] }>(q.stdout) };
    };
    const q = await quick();
    expect(q.code).toBe(1);
    expect(q.doc.quick).toBe(true);
    expect(q.doc.results.map((x) => x.id)).toEqual(['s0.pg.reachable', 's0.vector.extension', 's0.databases', 's0.schema.tables', 's0.schema.hnsw', 's0.postgres.settings', 's0.vector.ef-search', 's0.vector.index-memory']);
    expect(q.doc.results.find((x) => x.id === 's0.schema.hnsw')!.verdict).toBe('fail');
    const r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Ensure the HNSW indexes in claude_flow_shared \(changed, created embeddings_embedding_hnsw\)/);
    expect((await quick()).code).toBe(0);
  });

  it('fails s0.databases when the owner loses CONNECT, and sprint 0 grants it back', async () => {
    await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory)), (c) =>
      c.query(`REVOKE CONNECT ON DATABASE ${DATABASES.shared.name} FROM PUBLIC, ${DATABASES.shared.owner}`),
    );
    const v = await verify(lab);
    expect(v.code).toBe(1);
    expect(v.byId('s0.databases').verdict).toBe('fail');
    expect(v.byId('s0.databases').detail).toMatch(/shared_user@127\.0\.10\.11:5432\/claude_flow_shared: permission denied for database "claude_flow_shared"/);
    const r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Create the database claude_flow_shared owned by shared_user \(changed, CONNECT granted to shared_user\)/);
  });

  it('fails s0.pg.reachable, naming the host, when the server is stopped; sprint 0 starts it and the data is still there', async () => {
    const node = await ctx.pool.node('db1');
    await node.services.stop(postgresService(node, ctx.inventory));
    const v = await verify(lab);
    expect(v.code).toBe(1);
    expect(v.byId('s0.pg.reachable').verdict).toBe('fail');
    expect(v.byId('s0.pg.reachable').detail).toMatch(/^db1: cannot connect to postgres@127\.0\.10\.11:5432\/postgres: .*ECONNREFUSED/);
    const r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Start PostgreSQL on db1.*\(changed, started\)/);
    expect(r.stderr).toMatch(/Initialise the database cluster on db1.*\(unchanged\)/);
    expect(await readSentinel(ctx)).toBe(SENTINEL.value);
  });

  it('fails s0.vector.extension, naming the database, when the extension is dropped there', async () => {
    await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory), DATABASES.shared.name), (c) =>
      c.query(`DROP EXTENSION ${extensionName(ctx.inventory.postgres.vector)} CASCADE`),
    );
    const v = await verify(lab);
    expect(v.code).toBe(1);
    expect(v.byId('s0.vector.extension').verdict).toBe('fail');
    expect(v.byId('s0.vector.extension').detail).toBe('pgvector is not installed in claude_flow_shared');
    // The project database, and the data in it, are untouched.
    expect(await readSentinel(ctx)).toBe(SENTINEL.value);
  });
});

describe('sprint 0 over SSH', () => {
  let lab: TestLab;
  beforeAll(async () => {
    lab = await createLab(SUBNET, { ssh: true });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('passes from bare hosts, and a second run changes nothing', async () => {
    const { r, seconds } = await timed(() => lab.cli(['sprint', '0', '--json']));
    console.log(`sprint 0 over ssh: first run ${seconds} s`);
    expect(r.code, r.stderr).toBe(0);
    const doc = parseJson<SprintJson>(r.stdout);
    expect(Object.values(verdicts(doc.results))).not.toContain('fail');
    expect(doc.passed).toBe(true);
    const again = await lab.cli(['sprint', '0', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(parseJson<SprintJson>(again.stdout).tasks.changed).toBe(0);
  });
});
