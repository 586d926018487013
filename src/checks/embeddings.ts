/**
 * Embedding-like test vectors and recall arithmetic. Uniformly random
 * 384-dimension vectors make every distance nearly equal, so HNSW recall on
 * them is meaningless (about 0.06, docs/lab-facts.md); real embeddings live near a
 * low-dimensional subspace, which is what this generator imitates: a random
 * rank-r basis, gaussian coefficients, plus a little isotropic noise.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), Number.EPSILON);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

export interface EmbeddingGenerator {
  next(): number[];
}

export function embeddingGenerator(opts: { dim: number; rank?: number; noise?: number; seed: number }): EmbeddingGenerator {
  const g = gaussian(mulberry32(opts.seed));
  const rank = opts.rank ?? 16;
  const noise = opts.noise ?? 0.2;
  const basis = Array.from({ length: rank }, () => Array.from({ length: opts.dim }, g));
  return {
    next() {
      const v = new Array<number>(opts.dim).fill(0);
      for (const b of basis) {
        const c = g();
        for (let i = 0; i < opts.dim; i++) v[i]! += c * b[i]!;
      }
      for (let i = 0; i < opts.dim; i++) v[i]! += noise * Math.sqrt(rank) * g();
      const norm = Math.hypot(...v);
      // Six significant digits keep the SQL text small without changing neighbours.
      return v.map((x) => Number((x / norm).toPrecision(6)));
    },
  };
}

export function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** Mean over queries of |approx ∩ exact| / |exact| (recall@k with k = |exact|). */
export function recallAtK(exact: string[][], approx: string[][]): number {
  if (exact.length !== approx.length) throw new RangeError('recall needs one approximate result per exact result');
  if (!exact.length) return 0;
  let sum = 0;
  for (let i = 0; i < exact.length; i++) {
    const truth = new Set(exact[i]);
    if (!truth.size) continue;
    sum += approx[i]!.filter((k) => truth.has(k)).length / truth.size;
  }
  return sum / exact.length;
}
