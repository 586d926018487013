import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { DpgcError } from '../errors.js';
import { render, TEMPLATES_DIR, templateText } from '../templates.js';
import { columnType, EMBEDDING_DIM, HNSW_PARAMS, hnswIndexSql, quoteIdent, type HnswIndex, type VectorNames } from './vector.js';

/**
 * The application schema: versioned migrations (templates/sql/migrations/
 * NNNN_name.sql) applied once each, in a transaction, as the database owner,
 * and recorded with their checksum in dpgc.schema_migrations. HNSW indexes
 * are ensured on every run instead (see ensureHnswIndexes): a dropped or
 * invalid one is repaired by re-running sprint 0.
 */
const MIGRATIONS_DIR = 'sql/migrations';
const LEDGER = 'dpgc.schema_migrations';

export interface Migration {
  version: number;
  name: string;
  file: string;
  /** sha256 of the template text: an edit to an applied migration is caught. */
  checksum: string;
}

export function parseMigrationFile(file: string): { version: number; name: string } | undefined {
  const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
  return m ? { version: Number(m[1]), name: m[2]! } : undefined;
}

export function listMigrations(): Migration[] {
  const out: Migration[] = [];
  for (const f of readdirSync(join(TEMPLATES_DIR, MIGRATIONS_DIR)).sort()) {
    const p = parseMigrationFile(f);
    if (!p) continue;
    const file = `${MIGRATIONS_DIR}/${f}`;
    out.push({ ...p, file, checksum: createHash('sha256').update(templateText(file)).digest('hex') });
  }
  return out;
}

export function renderMigration(m: Pick<Migration, 'file'>, names: Pick<VectorNames, 'type'>): string {
  return render(m.file, { vec: columnType(names) });
}

/** Tables every database must have after the migrations. */
export const EXPECTED_TABLES: { schema: string; table: string }[] = [
  ...['memory_entries', 'patterns', 'pattern_history', 'trajectories', 'graph_nodes', 'graph_edges', 'hyperbolic_embeddings', 'vector_indexes', 'sessions', 'metadata'].map(
    (table) => ({ schema: 'public', table }),
  ),
  { schema: 'claude_flow', table: 'embeddings' },
];
export const EXPECTED_SCHEMAS = ['public', 'claude_flow'];

/** One HNSW index per embedding column. */
export const HNSW_INDEXES: HnswIndex[] = [
  ...['memory_entries', 'patterns', 'trajectories', 'graph_nodes', 'hyperbolic_embeddings'].map((table) => ({ schema: 'public', table, column: 'embedding', name: `${table}_embedding_hnsw` })),
  { schema: 'claude_flow', table: 'embeddings', column: 'embedding', name: 'embeddings_embedding_hnsw' },
];

export interface MigrationOutcome {
  applied: string[];
}

/**
 * Applies pending migrations in `client`'s database (connected as a
 * superuser), each in its own transaction under SET ROLE owner, so every
 * object belongs to the database owner.
 */
export async function applyMigrations(client: pg.Client, owner: string, names: VectorNames, migrations = listMigrations()): Promise<MigrationOutcome> {
  const ledger = await client.query<{ t: string | null }>(`SELECT to_regclass('${LEDGER}')::text AS t`);
  const applied = new Map<number, { name: string; checksum: string }>();
  if (ledger.rows[0]?.t) {
    const r = await client.query<{ version: number; name: string; checksum: string }>(`SELECT version, name, checksum FROM ${LEDGER}`);
    for (const row of r.rows) applied.set(row.version, row);
  }
  checkLedger(applied, migrations);
  const pending = migrations.filter((m) => !applied.has(m.version));
  if (!pending.length) return { applied: [] };
  await client.query(`CREATE SCHEMA IF NOT EXISTS dpgc`);
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${LEDGER} (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  const done: string[] = [];
  for (const m of pending) {
    const sql = renderMigration(m, names);
    await client.query('BEGIN');
    try {
      // Two dpgc runs at once must not both apply a migration.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [LEDGER]);
      const again = await client.query(`SELECT 1 FROM ${LEDGER} WHERE version = $1`, [m.version]);
      if (again.rowCount) {
        await client.query('ROLLBACK');
        continue;
      }
      await client.query(`SET LOCAL ROLE ${quoteIdent(owner)}`);
      await client.query(sql);
      await client.query('RESET ROLE');
      await client.query(`INSERT INTO ${LEDGER} (version, name, checksum) VALUES ($1, $2, $3)`, [m.version, m.name, m.checksum]);
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw new DpgcError(`migration ${m.file} failed in database ${client.database}: ${(e as Error).message}`, {
        hint: 'Nothing of this migration was applied (it runs in one transaction). Fix the cause and run again.',
      });
    }
    done.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
  }
  return { applied: done };
}

/** An applied migration whose file changed, or one applied here that dpgc no longer has, stops the run (pure). */
export function checkLedger(applied: Map<number, { name: string; checksum: string }>, migrations: Migration[]): void {
  for (const [version, a] of applied) {
    const m = migrations.find((x) => x.version === version);
    if (!m) {
      throw new DpgcError(`migration ${version} (${a.name}) is recorded as applied, but this dpgc has no such migration`, {
        hint: 'This database was migrated by a newer dpgc: upgrade dpgc rather than run an older one against it.',
      });
    }
    if (m.checksum !== a.checksum) {
      throw new DpgcError(`migration ${m.file} was edited after it was applied (checksum ${a.checksum.slice(0, 12)} recorded, ${m.checksum.slice(0, 12)} now)`, {
        hint: 'Applied migrations are never edited: restore the file and write a new migration instead.',
      });
    }
  }
}

export interface IndexState {
  name: string;
  schema: string;
  valid: boolean;
  accessMethod: string;
  definition: string;
}

export async function hnswIndexStates(client: pg.Client): Promise<IndexState[]> {
  const r = await client.query<{ name: string; schema: string; valid: boolean; am: string; def: string }>(
    `SELECT c.relname AS name, n.nspname AS schema, i.indisvalid AS valid, a.amname AS am, pg_get_indexdef(c.oid) AS def
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [HNSW_INDEXES.map((i) => i.schema), HNSW_INDEXES.map((i) => i.name)],
  );
  return r.rows.map((x) => ({ name: x.name, schema: x.schema, valid: x.valid, accessMethod: x.am, definition: x.def }));
}

/** What is wrong with the HNSW indexes, one phrase per index (pure). */
export function hnswProblems(states: IndexState[], names: Pick<VectorNames, 'accessMethod'>): string[] {
  const out: string[] = [];
  for (const ix of HNSW_INDEXES) {
    const s = states.find((x) => x.schema === ix.schema && x.name === ix.name);
    if (!s) out.push(`${ix.schema}.${ix.name} missing`);
    else if (!s.valid) out.push(`${ix.schema}.${ix.name} invalid (indisvalid = false)`);
    else if (s.accessMethod !== names.accessMethod) out.push(`${ix.schema}.${ix.name} uses ${s.accessMethod}, not ${names.accessMethod}`);
  }
  return out;
}

/** Creates missing HNSW indexes and rebuilds invalid ones; returns what it did. */
export async function ensureHnswIndexes(client: pg.Client, names: VectorNames): Promise<string[]> {
  const states = await hnswIndexStates(client);
  const did: string[] = [];
  for (const ix of HNSW_INDEXES) {
    const s = states.find((x) => x.schema === ix.schema && x.name === ix.name);
    if (s?.valid) continue;
    if (s) {
      await client.query(`REINDEX INDEX ${quoteIdent(ix.schema)}.${quoteIdent(ix.name)}`);
      did.push(`rebuilt ${ix.name}`);
    } else {
      await client.query(hnswIndexSql(names, ix));
      did.push(`created ${ix.name}`);
    }
  }
  // The registry table mirrors what exists; kept in step with the indexes themselves.
  for (const ix of HNSW_INDEXES) {
    await client.query(
      `INSERT INTO public.vector_indexes (name, schema_name, table_name, column_name, dimensions, m, ef_construction)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
      [ix.name, ix.schema, ix.table, ix.column, EMBEDDING_DIM, HNSW_PARAMS.m, HNSW_PARAMS.ef_construction],
    );
  }
  return did;
}

export interface SchemaInspection {
  missingSchemas: string[];
  missingTables: string[];
  schemaVersion: string | undefined;
}

export async function inspectSchema(client: pg.Client): Promise<SchemaInspection> {
  const s = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)', [EXPECTED_SCHEMAS]);
  const have = new Set(s.rows.map((r) => r.nspname));
  const t = await client.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)`,
    [EXPECTED_SCHEMAS],
  );
  const tables = new Set(t.rows.map((r) => `${r.schema}.${r.table}`));
  let schemaVersion: string | undefined;
  if (tables.has('public.metadata')) {
    schemaVersion = (await client.query<{ value: string }>("SELECT value FROM public.metadata WHERE key = 'schema_version'")).rows[0]?.value;
  }
  return {
    missingSchemas: EXPECTED_SCHEMAS.filter((x) => !have.has(x)),
    missingTables: EXPECTED_TABLES.map((x) => `${x.schema}.${x.table}`).filter((x) => !tables.has(x)),
    schemaVersion,
  };
}
