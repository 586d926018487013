import { DpgcError } from '../errors.js';

/**
 * The one module that knows the vector engines by name. Everything else in
 * dpgc asks this module for the extension, type, access method, operator
 * class and search setting, so switching engine (or a ruvector release that
 * renames its access method) touches nothing outside this file.
 */
export type VectorEngine = 'pgvector' | 'ruvector';

/** Names as the database knows them. */
export interface VectorNames {
  engine: VectorEngine;
  extension: string;
  /** The column type without its dimension, e.g. `vector`. */
  type: string;
  accessMethod: string;
  cosineOpclass: string;
  /** Cosine distance operator (both engines use pgvector's operators). */
  cosineDistance: '<=>';
  /** The GUC that widens an HNSW search; undefined when the engine exposes none. */
  efSearchGuc: string | undefined;
  /** A query returning one row with one column `version`. */
  versionSql: string;
}

/** Engine facts that do not come from a database catalog. */
export const ENGINES = {
  pgvector: {
    label: 'pgvector',
    extension: 'vector',
    /** PostgreSQL apt repository (apt.postgresql.org) package. */
    aptPackage: (pgMajor: number) => `postgresql-${pgMajor}-pgvector`,
    /** Debian source package built where no binary package exists (docs/lab-facts.md). */
    debianSource: 'pgvector',
  },
  ruvector: {
    label: 'ruvector',
    extension: 'ruvector',
    /** The image's default login role, removed from every install. */
    imageLoginRole: 'ruvector',
    /** Where the pinned image keeps its extension files (PostgreSQL 17 inside). */
    imagePgMajor: 17,
  },
} as const;

export const PGVECTOR_NAMES: VectorNames = {
  engine: 'pgvector',
  extension: 'vector',
  type: 'vector',
  accessMethod: 'hnsw',
  cosineOpclass: 'vector_cosine_ops',
  cosineDistance: '<=>',
  efSearchGuc: 'hnsw.ef_search',
  versionSql: "SELECT extversion AS version FROM pg_extension WHERE extname = 'vector'",
};

/** Embedding width of every table (the original project's model: 384 floats). */
export const EMBEDDING_DIM = 384;

/** HNSW build parameters: docs/lab-facts.md records recall 0.99 at ef_search 100 with these on 100k rows. */
export const HNSW_PARAMS = { m: 16, ef_construction: 64 } as const;
export const EF_SEARCH = 100;

export function extensionName(engine: VectorEngine): string {
  return ENGINES[engine].extension;
}

/** Rows from the catalog queries in CATALOG_SQL, for an engine whose names vary by release. */
export interface CatalogRows {
  types: string[];
  accessMethods: string[];
  opclasses: { opcname: string; amname: string }[];
  settings: string[];
}

/**
 * Catalog queries for the objects an extension owns ($1 = extension name).
 * GUCs of a library appear only once it is loaded: run versionSql first.
 */
export const CATALOG_SQL = {
  types:
    "SELECT t.typname AS name FROM pg_type t JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e' " +
    'JOIN pg_extension e ON e.oid = d.refobjid WHERE e.extname = $1 ORDER BY 1',
  accessMethods:
    "SELECT a.amname AS name FROM pg_am a JOIN pg_depend d ON d.classid = 'pg_am'::regclass AND d.objid = a.oid AND d.deptype = 'e' " +
    "JOIN pg_extension e ON e.oid = d.refobjid WHERE e.extname = $1 AND a.amtype = 'i' ORDER BY 1",
  opclasses:
    "SELECT c.opcname, a.amname FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod JOIN pg_depend d ON d.classid = 'pg_opclass'::regclass " +
    "AND d.objid = c.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid WHERE e.extname = $1 ORDER BY 1",
  settings: "SELECT name FROM pg_settings WHERE name LIKE $1 || '.%' ORDER BY 1",
} as const;

/**
 * ruvector's names from its catalog rows. Releases have called the HNSW
 * access method `hnsw`, `ruvector_hnsw` and `ruhnsw`, and the search setting
 * `ruvector.ef_search` then `ruvector.hnsw_ef_search` (NOTES.md).
 */
export function ruvectorNamesFromCatalog(rows: CatalogRows): VectorNames {
  const ext = ENGINES.ruvector.extension;
  const problems: string[] = [];
  const type = rows.types.find((t) => t === ext) ?? rows.types.find((t) => t.startsWith(ext) && !t.startsWith('_') && !/sparse|half|bit/.test(t));
  if (!type) problems.push(`no ${ext} type (types owned by the extension: ${rows.types.join(', ') || 'none'})`);
  const am = ['ruhnsw', 'ruvector_hnsw', 'hnsw'].find((a) => rows.accessMethods.includes(a)) ?? rows.accessMethods.find((a) => a.includes('hnsw'));
  if (!am) problems.push(`no HNSW access method (index access methods owned by the extension: ${rows.accessMethods.join(', ') || 'none'})`);
  const forAm = rows.opclasses.filter((o) => o.amname === am).map((o) => o.opcname);
  const opclass = forAm.find((o) => o === `${ext}_cosine_ops`) ?? forAm.find((o) => o.includes('cosine'));
  if (am && !opclass) problems.push(`no cosine operator class for access method ${am} (found: ${forAm.join(', ') || 'none'})`);
  if (problems.length || !type || !am || !opclass) {
    throw new DpgcError(`the installed ${ext} extension does not look like a supported release: ${problems.join('; ')}`, {
      hint: 'Pin inventory postgres.ruvector_image to a release dpgc supports, or use postgres.vector: pgvector.',
    });
  }
  const efSearchGuc = [`${ext}.hnsw_ef_search`, `${ext}.ef_search`].find((g) => rows.settings.includes(g));
  return {
    engine: 'ruvector',
    extension: ext,
    type,
    accessMethod: am,
    cosineOpclass: opclass,
    cosineDistance: '<=>',
    efSearchGuc,
    versionSql: `SELECT ${ext}_version()::text AS version`,
  };
}

/** A minimal query interface, so this module needs no driver. */
export type Query = (sql: string, params?: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

/** The engine's names in the database `query` talks to (the extension must be installed there). */
export async function vectorNames(engine: VectorEngine, query: Query): Promise<VectorNames> {
  if (engine === 'pgvector') return PGVECTOR_NAMES;
  const ext = ENGINES.ruvector.extension;
  await query(`SELECT ${ext}_version()`);
  const col = async (sql: string) => (await query(sql, [ext])).rows.map((r) => String(r['name']));
  return ruvectorNamesFromCatalog({
    types: await col(CATALOG_SQL.types),
    accessMethods: await col(CATALOG_SQL.accessMethods),
    opclasses: (await query(CATALOG_SQL.opclasses, [ext])).rows.map((r) => ({ opcname: String(r['opcname']), amname: String(r['amname']) })),
    settings: await col(CATALOG_SQL.settings),
  });
}

// ---- SQL generation (pure) ----

export function quoteIdent(s: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`;
}

export function createExtensionSql(engine: VectorEngine): string {
  return `CREATE EXTENSION IF NOT EXISTS ${quoteIdent(extensionName(engine))}`;
}

export function columnType(n: Pick<VectorNames, 'type'>, dim = EMBEDDING_DIM): string {
  return `${quoteIdent(n.type)}(${dim})`;
}

export interface HnswIndex {
  schema: string;
  table: string;
  column: string;
  /** Index name, unique within the schema. */
  name: string;
}

export function hnswIndexSql(n: Pick<VectorNames, 'accessMethod' | 'cosineOpclass'>, ix: HnswIndex, p: { m: number; ef_construction: number } = HNSW_PARAMS): string {
  return (
    `CREATE INDEX IF NOT EXISTS ${quoteIdent(ix.name)} ON ${quoteIdent(ix.schema)}.${quoteIdent(ix.table)} ` +
    `USING ${quoteIdent(n.accessMethod)} (${quoteIdent(ix.column)} ${quoteIdent(n.cosineOpclass)}) WITH (m = ${p.m}, ef_construction = ${p.ef_construction})`
  );
}

/** Transaction-local, so a pooled connection never keeps it. Undefined when the engine has no such setting. */
export function efSearchSql(n: Pick<VectorNames, 'efSearchGuc'>, ef = EF_SEARCH): string | undefined {
  if (!n.efSearchGuc) return undefined;
  if (!Number.isInteger(ef) || ef < 1 || ef > 1000) throw new RangeError(`ef_search must be an integer in 1..1000, got ${ef}`);
  return `SET LOCAL ${n.efSearchGuc} = ${ef}`;
}

/** The text form both engines accept for a bound parameter: `[0.1,0.2,…]`. */
export function vectorLiteral(v: readonly number[]): string {
  for (const x of v) if (!Number.isFinite(x)) throw new RangeError('an embedding must contain finite numbers only');
  return `[${v.join(',')}]`;
}
