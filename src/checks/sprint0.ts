import { randomBytes } from 'node:crypto';
import { EmbeddingDimensionError, explainSearch, searchMemory, storeMemory } from '../app/memory.js';
import { writableHost } from '../components/databases.js';
import { appOn, DATABASES, superuserOn, type DatabaseKey } from '../components/endpoints.js';
import { HNSW_INDEXES, hnswIndexStates, hnswProblems, inspectSchema } from '../components/schema.js';
import { EMBEDDING_DIM, ENGINES, extensionName, vectorLiteral, vectorNames, quoteIdent } from '../components/vector.js';
import type { RunContext } from '../context.js';
import { connect, withClient, type Client } from '../db/client.js';
import { embeddingGenerator, recallAtK } from './embeddings.js';
import { fail, pass, type Check } from './types.js';

/**
 * Sprint 0's success criteria, measured live from the control machine over
 * TCP with SCRAM, the way applications connect.
 */
const DBS = Object.keys(DATABASES) as DatabaseKey[];
export const RECALL_THRESHOLD = 0.95;
export const ROUNDTRIP_ROWS = 2000;
const QUERIES = 25;
const WRITERS = 4;
const K = 10;

type Ctx = Pick<RunContext, 'inventory' | 'secrets'>;

/** The base host, or whichever postgres host took over writes after sprint 3. */
function base(ctx: Ctx) {
  return writableHost(ctx.inventory, ctx.secrets);
}

async function names(ctx: Ctx, c: Client) {
  return vectorNames(ctx.inventory.postgres.vector, (sql, params) => c.query(sql, params));
}

/** Every database, connected as the superuser; results named by database. */
async function perDatabase<T>(ctx: Ctx, fn: (c: Client, db: string) => Promise<T>): Promise<{ db: string; r: T }[]> {
  const out: { db: string; r: T }[] = [];
  for (const key of DBS) {
    const db = DATABASES[key].name;
    out.push({ db, r: await withClient(ctx.secrets, superuserOn(ctx.inventory, await base(ctx), db), (c) => fn(c, db)) });
  }
  return out;
}

export const reachable: Check = {
  id: 's0.pg.reachable',
  title: 'PostgreSQL 15 or newer answers on the base host',
  sprint: 0,
  async run(ctx) {
    const h = await base(ctx);
    const r = await withClient(ctx.secrets, superuserOn(ctx.inventory, h), async (c) =>
      (await c.query<{ num: string; v: string }>("SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS v")).rows[0]!,
    );
    const where = `${h.name} ${h.address}:${ctx.inventory.ports.postgres}`;
    if (Number(r.num) < 150000) return fail(`${where} runs PostgreSQL ${r.v}; dpgc needs 15 or newer`, { value: r.v, threshold: '≥ 15' });
    return pass(`${r.v.split(' ')[0]} on ${where}`, '≥ 15');
  },
};

export const extensionInstalled: Check = {
  id: 's0.vector.extension',
  title: 'The vector extension is installed in both databases',
  sprint: 0,
  async run(ctx) {
    const engine = ctx.inventory.postgres.vector;
    const rows = await perDatabase(ctx, async (c) => (await c.query<{ v: string }>('SELECT extversion AS v FROM pg_extension WHERE extname = $1', [extensionName(engine)])).rows[0]?.v);
    const missing = rows.filter((x) => !x.r).map((x) => x.db);
    if (missing.length) return fail(`${ENGINES[engine].label} is not installed in ${missing.join(' and ')}`, { remedy: 'Run `dpgc sprint 0` again: it creates the extension where it is missing.' });
    const versions = [...new Set(rows.map((x) => x.r))];
    return pass(`${ENGINES[engine].label} ${versions.join(', ')}`, 'in both databases');
  },
};

export const databases: Check = {
  id: 's0.databases',
  title: 'Both databases exist and their owners can connect',
  sprint: 0,
  async run(ctx) {
    const problems: string[] = [];
    for (const key of DBS) {
      const d = DATABASES[key];
      try {
        await withClient(ctx.secrets, appOn(ctx.inventory, await base(ctx), key), async (c) => {
          const r = await c.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()');
          if (r.rows[0]?.owner !== d.owner) problems.push(`${d.name} is owned by ${r.rows[0]?.owner}, not ${d.owner}`);
        });
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    if (problems.length) return fail(problems.join('\n'), { remedy: 'Run `dpgc sprint 0` again: it restores owners and CONNECT grants.' });
    return pass(`${DBS.length}/${DBS.length}`, DBS.map((k) => `${DATABASES[k].name} (${DATABASES[k].owner})`).join(', '));
  },
};

export const schemaPresent: Check = {
  id: 's0.schema.tables',
  title: 'Both schemas and every table exist in both databases',
  sprint: 0,
  async run(ctx) {
    const rows = await perDatabase(ctx, (c) => inspectSchema(c));
    const problems = rows.flatMap(({ db, r }) => [
      ...r.missingSchemas.map((s) => `${db}: schema ${s} missing`),
      ...r.missingTables.map((t) => `${db}: table ${t} missing`),
      ...(r.schemaVersion ? [] : [`${db}: no schema_version in public.metadata`]),
    ]);
    if (problems.length) return fail(problems.join('\n'));
    return pass(`schema version ${[...new Set(rows.map((x) => x.r.schemaVersion))].join(', ')}`, 'all tables in both databases');
  },
};

export const hnswIndexes: Check = {
  id: 's0.schema.hnsw',
  title: 'Every HNSW index exists and is valid in both databases',
  sprint: 0,
  async run(ctx) {
    const rows = await perDatabase(ctx, async (c) => hnswProblems(await hnswIndexStates(c), await names(ctx, c)));
    const problems = rows.flatMap(({ db, r }) => r.map((p) => `${db}: ${p}`));
    if (problems.length) return fail(problems.join('\n'), { remedy: 'Run `dpgc sprint 0` again: it recreates missing HNSW indexes and rebuilds invalid ones.' });
    return pass(`${HNSW_INDEXES.length * rows.length} valid`, `${HNSW_INDEXES.length} per database`);
  },
};

/** A connection as the project database's owner: the application's path. */
async function appClient(ctx: Ctx): Promise<Client> {
  return connect(ctx.secrets, appOn(ctx.inventory, await base(ctx), 'project'), { applicationName: 'dpgc-check' });
}

export const roundTrip: Check = {
  id: 's0.vector.roundtrip',
  title: `Vector round trip: HNSW top-${K} agrees with an exact scan`,
  sprint: 0,
  async run(ctx) {
    const c = await appClient(ctx);
    const namespace = `dpgc-check-${randomBytes(4).toString('hex')}`;
    try {
      const n = await names(ctx, c);
      const gen = embeddingGenerator({ dim: EMBEDDING_DIM, seed: 20240 });
      const rows = Array.from({ length: ROUNDTRIP_ROWS }, (_, i) => ({ namespace, key: `k${i}`, value: `v${i}`, embedding: gen.next(), tags: ['dpgc-check'] }));
      // A few writers at once, as applications write: each row is one index insertion, and they dominate this check's time.
      await Promise.all(
        Array.from({ length: WRITERS }, async (_, w) => {
          const wc = await appClient(ctx);
          try {
            await wc.query('BEGIN');
            for (let i = w; i < rows.length; i += WRITERS) await storeMemory(wc, n, rows[i]!);
            await wc.query('COMMIT');
          } finally {
            await wc.end().catch(() => {});
          }
        }),
      );
      await c.query('ANALYZE public.memory_entries');
      const queries = Array.from({ length: QUERIES }, () => gen.next());
      const plan = await explainSearch(c, n, { namespace, query: queries[0]!, limit: K }, 'hnsw');
      const indexName = 'memory_entries_embedding_hnsw';
      if (!plan.includes(`Index Scan using ${indexName}`)) {
        return fail(`the search did not use the HNSW index ${indexName}, so recall would prove nothing; plan:\n${plan.replace(/'\[[^\]]*\]'/g, "'[…]'")}`);
      }
      const exact: string[][] = [];
      const approx: string[][] = [];
      for (const q of queries) {
        approx.push((await searchMemory(c, n, { namespace, query: q, limit: K }, 'hnsw')).map((h) => h.key));
        exact.push((await searchMemory(c, n, { namespace, query: q, limit: K }, 'exact')).map((h) => h.key));
      }
      const recall = recallAtK(exact, approx);
      const measured = `${recall.toFixed(3)} (${ROUNDTRIP_ROWS} vectors, ${QUERIES} queries)`;
      if (recall < RECALL_THRESHOLD) return fail(`recall@${K} ${recall.toFixed(3)} is below ${RECALL_THRESHOLD}`, { value: measured, threshold: `≥ ${RECALL_THRESHOLD}` });
      return pass(measured, `≥ ${RECALL_THRESHOLD}`);
    } finally {
      await c.query('ROLLBACK').catch(() => {});
      await c.query('DELETE FROM public.memory_entries WHERE namespace = $1', [namespace]).catch(() => {});
      await c.end().catch(() => {});
    }
  },
};

export const wrongDimension: Check = {
  id: 's0.vector.dimension',
  title: `A vector of the wrong dimension is rejected`,
  sprint: 0,
  async run(ctx) {
    const c = await appClient(ctx);
    try {
      const n = await names(ctx, c);
      const short = new Array<number>(EMBEDDING_DIM - 1).fill(0.1);
      let appError: string | undefined;
      try {
        await storeMemory(c, n, { namespace: 'dpgc-check', key: 'wrong-dim', value: 'x', embedding: short });
      } catch (e) {
        if (e instanceof EmbeddingDimensionError) appError = e.message;
        else throw e;
      }
      if (!appError) return fail(`storeMemory accepted a ${short.length}-dimension embedding`);
      // The column type itself must refuse too, for writers that bypass the application code.
      let dbError: string | undefined;
      await c.query('BEGIN');
      try {
        await c.query(`INSERT INTO public.memory_entries (namespace, key, value, embedding) VALUES ('dpgc-check', 'wrong-dim', 'x', $1::${quoteIdent(n.type)})`, [vectorLiteral(short)]);
      } catch (e) {
        dbError = (e as Error).message;
      } finally {
        await c.query('ROLLBACK');
      }
      if (!dbError) return fail(`the database accepted a ${short.length}-dimension vector into memory_entries.embedding`);
      return pass('rejected', `${EMBEDDING_DIM} dimensions`, `application: ${appError}; database: ${dbError}`);
    } finally {
      await c.end().catch(() => {});
    }
  },
};

export const CONNECTION_CLIENTS = 5;
export const CONNECTION_SECONDS = 3;

export const connections: Check = {
  id: 's0.connections',
  title: `${CONNECTION_CLIENTS} concurrent clients for ${CONNECTION_SECONDS} s without an error`,
  sprint: 0,
  async run(ctx) {
    const until = Date.now() + CONNECTION_SECONDS * 1000;
    let queries = 0;
    const errors: string[] = [];
    const gen = embeddingGenerator({ dim: EMBEDDING_DIM, seed: 7 });
    const host = await base(ctx);
    const agent = async (i: number) => {
      let c: Client | undefined;
      try {
        c = await connect(ctx.secrets, appOn(ctx.inventory, host, i % 2 ? 'shared' : 'project'), { applicationName: `dpgc-check-${i}` });
        const n = await names(ctx, c);
        const q = gen.next();
        while (Date.now() < until) {
          await c.query('SELECT count(*) FROM public.memory_entries WHERE namespace = $1', ['dpgc-check']);
          await searchMemory(c, n, { namespace: 'dpgc-check', query: q, limit: 5 });
          queries += 2;
        }
      } catch (e) {
        errors.push((e as Error).message);
      } finally {
        await c?.end().catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: CONNECTION_CLIENTS }, (_, i) => agent(i)));
    const value = `${queries} queries, ${errors.length} errors`;
    if (errors.length || queries === 0) return fail(errors[0] ?? 'no query completed', { value, threshold: '0 errors' });
    return pass(value, '0 errors');
  },
};

export function sprint0Checks(): Check[] {
  return [reachable, extensionInstalled, databases, schemaPresent, hnswIndexes, roundTrip, wrongDimension, connections];
}
