import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DATABASES, firstPostgres, superuserOn } from '../../src/components/endpoints.js';
import type { RunContext } from '../../src/context.js';
import { withClient } from '../../src/db/client.js';
import type { PlanDocument } from '../../src/plan/plan.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * `--dry-run` and `dpgc plan` on a real lab (127.0.90.x): a dry run changes
 * nothing (files, processes, catalog) while it says what a real run then
 * changes, for files and SQL alike.
 */
const SUBNET = '127.0.90';

/** Every file dpgc manages, by mtime and size; the data directory only for its configuration files. */
async function files(root: string, pgData: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (p.startsWith(pgData) && p !== pgData) continue;
        await walk(p);
      } else if (e.isFile() && !e.name.endsWith('.log') && (!p.startsWith(pgData) || e.name.endsWith('.conf'))) {
        const s = await stat(p);
        out[p] = `${s.mtimeMs} ${s.size}`;
      }
    }
  };
  await walk(root);
  return out;
}

async function catalog(ctx: RunContext): Promise<unknown> {
  return withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory)), async (c) => ({
    roles: (await c.query('SELECT rolname, rolpassword, rolcanlogin FROM pg_authid ORDER BY rolname')).rows,
    dbs: (await c.query("SELECT datname, datacl::text AS acl FROM pg_database ORDER BY datname")).rows,
    settings: (await c.query("SELECT name, setting FROM pg_settings WHERE source = 'configuration file' ORDER BY name")).rows,
    postmaster: (await c.query('SELECT pg_postmaster_start_time()::text AS t')).rows,
    indexes: await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory), DATABASES.shared.name), async (d) =>
      (await d.query("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%hnsw' ORDER BY 1")).rows,
    ),
  }));
}

function changedTitles(stderr: string): string[] {
  return [...stderr.matchAll(/^.*?([A-Z][^\n]*?) \(changed[,)]/gm)].map((m) => m[1]!.trim());
}

describe('dry run and plan on the local lab', () => {
  let lab: TestLab;
  let ctx: RunContext;
  let pgData: string;

  beforeAll(async () => {
    lab = await createLab(SUBNET);
    pgData = `${lab.dir}/lab/db1/var/lib/postgresql/15/main`;
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('on bare hosts, --dry-run sprint 0 creates nothing and plans every step', async () => {
    const r = await lab.cli(['--dry-run', 'sprint', '0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(pgData)).toBe(false);
    expect(existsSync(lab.config.replace(/\.yaml$/, '.secrets.yaml'))).toBe(false);
    expect(existsSync(lab.config.replace(/\.yaml$/, '.state.json'))).toBe(false);
    const p = await lab.cli(['plan', '0', '--json']);
    expect(p.code, p.stderr).toBe(0);
    const doc = JSON.parse(p.stdout) as PlanDocument;
    expect(doc.sprint).toBe(0);
    // Sprint 0's SQL steps on bare hosts (ef_search per database added by the sizing work).
    expect(doc.steps.filter((s) => s.kind === 'sql' && s.changed).length).toBe(12);
    expect(existsSync(pgData)).toBe(false);
  }, 120_000);

  it('after drift, --dry-run changes no file, process or catalog row, and the plan lists what sprint 0 then changes', async () => {
    let r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    ctx = await lab.context();
    // Drift in the catalog and in the inventory's settings.
    await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory), DATABASES.shared.name), (c) => c.query('DROP INDEX claude_flow.embeddings_embedding_hnsw'));
    await withClient(ctx.secrets, superuserOn(ctx.inventory, firstPostgres(ctx.inventory)), (c) =>
      c.query(`REVOKE CONNECT ON DATABASE ${DATABASES.shared.name} FROM PUBLIC, ${DATABASES.shared.owner}`),
    );
    const inv = parse(await readFile(lab.config, 'utf8')) as { postgres?: { settings?: Record<string, string> } };
    inv.postgres = { ...inv.postgres, settings: { ...inv.postgres?.settings, work_mem: '8MB' } };
    await writeFile(lab.config, stringify(inv));

    const before = { files: await files(`${lab.dir}/lab`, pgData), catalog: await catalog(ctx) };
    r = await lab.cli(['--dry-run', 'sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('db1: would run CREATE INDEX IF NOT EXISTS embeddings_embedding_hnsw ON claude_flow.embeddings');
    expect(r.stderr).toContain(`would run GRANT CONNECT ON DATABASE ${DATABASES.shared.name} TO ${DATABASES.shared.owner}`);
    expect(r.stderr).toContain(`db1: would write ${pgData}/dpgc.conf`);
    const p = await lab.cli(['plan', '0', '--json']);
    expect(p.code, p.stderr).toBe(0);
    expect({ files: await files(`${lab.dir}/lab`, pgData), catalog: await catalog(ctx) }).toEqual(before);

    const planned = (JSON.parse(p.stdout) as PlanDocument).steps.filter((s) => s.changed).map((s) => s.title);
    expect(planned).toEqual(
      expect.arrayContaining([
        'Write the PostgreSQL settings (sized to the hosts, profile vector) and pg_hba on db1',
        `Create the database ${DATABASES.shared.name} owned by ${DATABASES.shared.owner}`,
        `Ensure the HNSW indexes in ${DATABASES.shared.name}`,
      ]),
    );
    r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(0);
    const changed = changedTitles(r.stderr);
    for (const t of planned) expect(changed.some((c) => c.endsWith(t)), `${t} planned, not changed by the run:\n${changed.join('\n')}`).toBe(true);

    const again = JSON.parse((await lab.cli(['plan', '0', '--json'])).stdout) as PlanDocument;
    expect(again.changes).toBe(0);
  }, 600_000);
});
