import { searchMemory, storeMemory, type Db } from '../app/memory.js';
import { EMBEDDING_DIM, type VectorNames } from '../components/vector.js';

/**
 * What one agent does per operation: the application's own calls (vector
 * search, upsert into memory_entries) and a plain read by key, in the mix a
 * memory-backed agent shows: mostly recall, some writes.
 */
export const NAMESPACE = 'dpgc-pool-test';
export const KEYS_PER_AGENT = 20;
export const MIX = [
  { op: 'search', weight: 0.4 },
  { op: 'upsert', weight: 0.3 },
  { op: 'read', weight: 0.3 },
] as const;
export type OpName = (typeof MIX)[number]['op'];

/** Pick an operation from a uniform [0,1) draw (pure, for tests). */
export function pickOp(u: number): OpName {
  let acc = 0;
  for (const m of MIX) {
    acc += m.weight;
    if (u < acc) return m.op;
  }
  return MIX[MIX.length - 1]!.op;
}

/** Unit vectors near a few directions, like embeddings of related texts (uniform noise makes every distance equal). */
export function embeddings(count: number, seed = 1): number[][] {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const bases = Array.from({ length: 8 }, () => Array.from({ length: EMBEDDING_DIM }, rnd));
  return Array.from({ length: count }, (_, i) => {
    const b = bases[i % bases.length]!;
    const v = b.map((x) => x + 0.3 * rnd());
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  });
}

export async function runOp(db: Db, names: VectorNames, op: OpName, agent: number, n: number, vecs: number[][]): Promise<void> {
  const key = `agent-${agent}-${n % KEYS_PER_AGENT}`;
  const v = vecs[(agent * 7 + n) % vecs.length]!;
  if (op === 'upsert') {
    await storeMemory(db, names, { namespace: NAMESPACE, key, value: `memory ${n} of agent ${agent}`, embedding: v, metadata: { agent }, tags: ['pool-test'] });
  } else if (op === 'search') {
    await searchMemory(db, names, { namespace: NAMESPACE, query: v, limit: 10 });
  } else {
    await db.query('SELECT value, metadata FROM public.memory_entries WHERE namespace = $1 AND key = $2', [NAMESPACE, key]);
  }
}

export async function cleanup(db: Db): Promise<number> {
  const r = await db.query('DELETE FROM public.memory_entries WHERE namespace = $1', [NAMESPACE]);
  return (r as { rowCount?: number | null }).rowCount ?? 0;
}
