import type pg from 'pg';
import { EF_SEARCH, EMBEDDING_DIM, efSearchSql, quoteIdent, vectorLiteral, type VectorNames } from '../components/vector.js';

/**
 * The application's memory API (the original project's store_memory and
 * search_memory), with every value a bound parameter: the original inlined
 * the query vector into SQL text. Checks and the pool test call this same
 * code, so what they measure is what applications do.
 */
export class EmbeddingDimensionError extends RangeError {
  constructor(readonly got: number) {
    super(`embedding has ${got} dimensions; memory_entries stores exactly ${EMBEDDING_DIM}`);
    this.name = 'EmbeddingDimensionError';
  }
}

/** One client (or a pooled client checked out for the call): search runs a short transaction. */
export type Db = Pick<pg.Client, 'query'>;

export interface MemoryEntry {
  namespace: string;
  key: string;
  value: string;
  embedding: readonly number[];
  metadata?: Record<string, unknown>;
  tags?: string[];
  expiresAt?: Date | null;
}

export interface MemoryHit {
  key: string;
  value: string;
  similarity: number;
  metadata: Record<string, unknown>;
}

export interface SearchQuery {
  namespace: string;
  query: readonly number[];
  /** 1..1000, default 10. */
  limit?: number;
  /** Cosine similarity floor, 0..1, default 0. */
  minSimilarity?: number;
}

function checkDim(v: readonly number[]): void {
  if (v.length !== EMBEDDING_DIM) throw new EmbeddingDimensionError(v.length);
}

/** Upsert on (namespace, key). Returns whether the row was new. */
export async function storeMemory(db: Db, names: Pick<VectorNames, 'type'>, e: MemoryEntry): Promise<{ id: string; inserted: boolean }> {
  checkDim(e.embedding);
  const r = await db.query<{ id: string; inserted: boolean }>(
    `INSERT INTO public.memory_entries (namespace, key, value, embedding, metadata, tags, expires_at)
     VALUES ($1, $2, $3, $4::${quoteIdent(names.type)}, $5, $6, $7)
     ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata,
       tags = EXCLUDED.tags, expires_at = EXCLUDED.expires_at, updated_at = now()
     RETURNING id::text, (xmax = 0) AS inserted`,
    [e.namespace, e.key, e.value, vectorLiteral(e.embedding), JSON.stringify(e.metadata ?? {}), e.tags ?? [], e.expiresAt ?? null],
  );
  return r.rows[0]!;
}

/** The search statement (pure): $1 namespace, $2 query vector, $3 limit, $4 min similarity. */
export function searchSql(names: Pick<VectorNames, 'type' | 'cosineDistance'>): string {
  const q = `$2::${quoteIdent(names.type)}`;
  const d = `embedding ${names.cosineDistance} ${q}`;
  // The similarity floor is applied outside: inside, the planner counts it as a filter and prefers a sequential scan to the HNSW index.
  return (
    `SELECT key, value, metadata, similarity FROM (SELECT key, value, metadata, 1 - (${d}) AS similarity FROM public.memory_entries ` +
    `WHERE namespace = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY ${d} LIMIT $3) hits WHERE similarity >= $4::float8`
  );
}

/**
 * `index` is what applications use: the HNSW search widened to EF_SEARCH,
 * the planner free to choose. `hnsw` also takes every other path away, so
 * the HNSW index answers even on a small table where PostgreSQL (rightly)
 * estimates an exact scan as cheaper: that is how recall is measured.
 * `exact` forbids index scans: the ground truth.
 */
export type SearchMode = 'index' | 'hnsw' | 'exact';

/** Nearest entries by cosine distance, most similar first. */
export async function searchMemory(db: Db, names: VectorNames, q: SearchQuery, mode: SearchMode = 'index'): Promise<MemoryHit[]> {
  const { params, sql } = prepareSearch(names, q);
  await db.query('BEGIN');
  try {
    for (const s of modeSettings(names, mode)) await db.query(s);
    const r = await db.query<MemoryHit>(sql, params);
    await db.query('COMMIT');
    return r.rows.map((x) => ({ ...x, similarity: Number(x.similarity) }));
  } catch (e) {
    await db.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/** EXPLAIN of the search as applications run it, to prove which index it uses. */
export async function explainSearch(db: Db, names: VectorNames, q: SearchQuery, mode: SearchMode = 'index'): Promise<string> {
  const { params, sql } = prepareSearch(names, q);
  await db.query('BEGIN');
  try {
    for (const s of modeSettings(names, mode)) await db.query(s);
    const r = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
    return r.rows.map((x) => x['QUERY PLAN']).join('\n');
  } finally {
    await db.query('ROLLBACK').catch(() => {});
  }
}

function prepareSearch(names: VectorNames, q: SearchQuery): { sql: string; params: unknown[] } {
  checkDim(q.query);
  const limit = q.limit ?? 10;
  const min = q.minSimilarity ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`limit must be an integer in 1..1000, got ${limit}`);
  if (!(min >= 0 && min <= 1)) throw new RangeError(`minSimilarity must be in 0..1, got ${min}`);
  return { sql: searchSql(names), params: [q.namespace, vectorLiteral(q.query), limit, min] };
}

function modeSettings(names: VectorNames, mode: SearchMode): string[] {
  if (mode === 'exact') return ['SET LOCAL enable_indexscan = off', 'SET LOCAL enable_bitmapscan = off'];
  const ef = efSearchSql(names, EF_SEARCH);
  const only = mode === 'hnsw' ? ['SET LOCAL enable_seqscan = off', 'SET LOCAL enable_bitmapscan = off', 'SET LOCAL enable_sort = off'] : [];
  return [...(ef ? [ef] : []), ...only];
}
