import { randomBytes } from 'node:crypto';
import { EmbeddingDimensionError, explainSearch, searchMemory, storeMemory } from '../app/memory.js';
import { appOn, DATABASES, superuserOn } from '../components/endpoints.js';
import { HNSW_INDEXES, hnswIndexStates, hnswProblems } from '../components/schema.js';
import { EMBEDDING_DIM, extensionName, vectorLiteral, quoteIdent } from '../components/vector.js';
import { connect, withClient, type Client } from '../db/client.js';
import { embeddingGenerator, recallAtK } from './embeddings.js';
import { fail, pass, type Check } from './types.js';
import { DBS, type Ctx, perDatabase, pgHosts, vectorNamesIn, writable } from './common.js';

/**
 * The vector store's criteria: HNSW indexes valid, a store/search round trip
 * through the application's own calls that agrees with an exact scan, the
 * wrong dimension refused, and the extension present on every member.
 */

export const RECALL_THRESHOLD = 0.95;

/**
 * Enough rows for a graph of several HNSW layers (m = 16) whose search must
 * agree with an exact scan; each row is one index insertion through the
 * application's own call, and they are most of this check's time.
 */
export const ROUNDTRIP_ROWS = 1000;

const QUERIES = 25;
const WRITERS = 8;
const K = 10;

export const hnswIndexes: Check = {
  id: 's0.schema.hnsw',
  title: 'Every HNSW index exists and is valid in both databases',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const rows = await perDatabase(ctx, async (c) => hnswProblems(await hnswIndexStates(c), await vectorNamesIn(ctx, c)));
    const problems = rows.flatMap(({ db, r }) => r.map((p) => `${db}: ${p}`));
    if (problems.length) return fail(problems.join('\n'), { remedy: 'Run `dpgc sprint 0` again: it recreates missing HNSW indexes and rebuilds invalid ones.' });
    return pass(`${HNSW_INDEXES.length * rows.length} valid`, `${HNSW_INDEXES.length} per database`);
  },
};

/** A connection as the project database's owner: the application's path. */
async function appClient(ctx: Ctx): Promise<Client> {
  return connect(ctx.secrets, appOn(ctx.inventory, await writable(ctx), 'project'), { applicationName: 'dpgc-check' });
}

export const roundTrip: Check = {
  id: 's0.vector.roundtrip',
  title: `Vector round trip: HNSW top-${K} agrees with an exact scan`,
  sprint: 0,
  kind: 'load',
  async run(ctx) {
    const c = await appClient(ctx);
    const namespace = `dpgc-check-${randomBytes(4).toString('hex')}`;
    // A few clients at once, as applications write and search: each row is one index insertion, and each
    // search a few round trips; one after another on one connection, they were most of this check's time.
    const writers: Client[] = [];
    try {
      for (let w = 0; w < WRITERS; w++) writers.push(await appClient(ctx));
      const n = await vectorNamesIn(ctx, c);
      const gen = embeddingGenerator({ dim: EMBEDDING_DIM, seed: 20240 });
      const rows = Array.from({ length: ROUNDTRIP_ROWS }, (_, i) => ({ namespace, key: `k${i}`, value: `v${i}`, embedding: gen.next(), tags: ['dpgc-check'] }));
      await Promise.all(
        writers.map(async (wc, w) => {
          await wc.query('BEGIN');
          for (let i = w; i < rows.length; i += WRITERS) await storeMemory(wc, n, rows[i]!);
          await wc.query('COMMIT');
        }),
      );
      await c.query('ANALYZE public.memory_entries');
      const queries = Array.from({ length: QUERIES }, () => gen.next());
      const plan = await explainSearch(c, n, { namespace, query: queries[0]!, limit: K }, 'hnsw');
      const indexName = 'memory_entries_embedding_hnsw';
      if (!plan.includes(`Index Scan using ${indexName}`)) {
        return fail(`the search did not use the HNSW index ${indexName}, so recall would prove nothing; plan:\n${plan.replace(/'\[[^\]]*\]'/g, "'[…]'")}`);
      }
      const exact = new Array<string[]>(QUERIES);
      const approx = new Array<string[]>(QUERIES);
      await Promise.all(
        writers.map(async (wc, w) => {
          for (let i = w; i < QUERIES; i += WRITERS) {
            approx[i] = (await searchMemory(wc, n, { namespace, query: queries[i]!, limit: K }, 'hnsw')).map((h) => h.key);
            exact[i] = (await searchMemory(wc, n, { namespace, query: queries[i]!, limit: K }, 'exact')).map((h) => h.key);
          }
        }),
      );
      const recall = recallAtK(exact, approx);
      const measured = `${recall.toFixed(3)} (${ROUNDTRIP_ROWS} vectors, ${QUERIES} queries)`;
      if (recall < RECALL_THRESHOLD) return fail(`recall@${K} ${recall.toFixed(3)} is below ${RECALL_THRESHOLD}`, { value: measured, threshold: `≥ ${RECALL_THRESHOLD}` });
      return pass(measured, `≥ ${RECALL_THRESHOLD}`);
    } finally {
      await Promise.all(writers.map((wc) => wc.query('ROLLBACK').catch(() => {}).then(() => wc.end().catch(() => {}))));
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
  kind: 'read',
  async run(ctx) {
    const c = await appClient(ctx);
    try {
      const n = await vectorNamesIn(ctx, c);
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

export const vectorEverywhere: Check = {
  id: 's3.vector.everywhere',
  title: 'The vector extension is present in both databases on every node',
  sprint: 3,
  kind: 'read',
  async run(ctx) {
    const ext = extensionName(ctx.inventory.postgres.vector);
    const missing: string[] = [];
    const versions = new Set<string>();
    for (const h of pgHosts(ctx)) {
      for (const k of DBS) {
        const v = await withClient(ctx.secrets, superuserOn(ctx.inventory, h, DATABASES[k].name), async (c) => (await c.query<{ v: string }>('SELECT extversion AS v FROM pg_extension WHERE extname = $1', [ext])).rows[0]?.v);
        if (v) versions.add(v);
        else missing.push(`${h.name}/${DATABASES[k].name}`);
      }
    }
    if (missing.length) return fail(`${ext} missing in ${missing.join(', ')}`, { remedy: 'Run `dpgc sprint 0` (it creates the extension on the primary; replicas get it by replication).' });
    return pass(`${ext} ${[...versions].join(', ')} on ${pgHosts(ctx).length} nodes`);
  },
};
