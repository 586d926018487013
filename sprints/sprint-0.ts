import { efSearchCheck, indexMemoryCheck, settingsCheck } from '../src/checks/settings.js';
import { connections, databases, extensionInstalled, reachable, schemaPresent } from '../src/checks/postgres.js';
import { hnswIndexes, roundTrip, wrongDimension } from '../src/checks/vector.js';
import { ensureDatabase, ensureExtension, ensureLoginRole, lockImageLoginRole, writableHost } from '../src/components/databases.js';
import { DATABASES, firstPostgres, superuserOn } from '../src/components/endpoints.js';
import { ensureCreateClusterDisabled, ensureRunning, initCluster, PG_SERVICE, postgresPackages, prepareDirectories, unlessPatroniManaged, writeConfig } from '../src/components/postgres.js';
import { installPackages } from '../src/components/packages.js';
import { preflight } from '../src/components/preflight.js';
import { applyMigrations, ensureHnswIndexes } from '../src/components/schema.js';
import { clusterSizing, ensureEfSearch } from '../src/components/sizing.js';
import type { Sizing } from '../src/config/sizing.js';
import { efSearch, humanBytes } from '../src/config/sizing.js';
import { ENGINES, PGVECTOR_NAMES, vectorNames } from '../src/components/vector.js';
import { installVectorExtension } from '../src/components/vector-install.js';
import type { Client } from '../src/db/client.js';
import { sqlStep } from '../src/plan/sql.js';
import { onHost, parallel, perHost, sequence, type Outcome, type PlanNode } from '../src/plan/step.js';
import type { Sprint } from './types.js';

/**
 * Sprint 0: from bare Debian/Ubuntu hosts to one PostgreSQL instance with a
 * vector extension, the two application databases, their schemas and HNSW
 * indexes. Patroni takes this very instance over in sprint 3, so nothing here
 * ever re-initialises a data directory that holds a cluster.
 *
 * For the operator: a preflight refusal (unsupported OS, no root, no disk, a
 * port or socket held by something dpgc did not start) exits 4 before any
 * host is changed. Migrations are applied once and recorded; HNSW indexes
 * are ensured on every run, so re-running sprint 0 recreates a dropped one
 * and rebuilds an invalid one, and restores a revoked CONNECT or a stopped
 * server, without touching the data.
 */
export const sprint0: Sprint = {
  id: 0,
  title: 'PostgreSQL with a vector extension, two databases, their schemas and HNSW indexes',
  roles: ['postgres'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const v = inv.postgres.version;
    const engine = inv.postgres.vector;
    const label = ENGINES[engine].label;
    const hosts = ctx.pool.specs('postgres');
    const b = firstPostgres(inv).name;
    const node = (name: string) => ctx.pool.node(name);
    const installs = perHost(inv);
    // Read once per run, from every postgres host (preflight shows the same facts): the base instance is sized for the whole cluster.
    let sized: Promise<Sizing> | undefined;
    const sizing = () => (sized ??= clusterSizing(inv, ctx.pool));
    const sql = (title: string, db: string, run: (c: Client) => Promise<Outcome>) =>
      sqlStep(title, b, { secrets: ctx.secrets, endpoint: async () => superuserOn(inv, await writableHost(inv, ctx.secrets), db), run });

    return [
      parallel(
        'Preflight: OS, privileges, disk and ports, before anything changes',
        hosts.map((h) =>
          onHost('command', `Check ${h.name} can host PostgreSQL`, h.name, async () => {
            const n = await node(h.name);
            const r = await preflight(n, {
              diskPath: n.paths.pgData,
              ports: [
                { port: inv.ports.postgres, services: [PG_SERVICE, 'patroni'], ownPath: n.paths.pgData, socketLock: `${n.paths.pgSocketDir}/.s.PGSQL.${inv.ports.postgres}.lock` },
              ],
            });
            for (const w of r.warnings) ctx.logger.warn(`${h.name}: ${w}`);
            const f = r.facts;
            const facts = `${humanBytes(f.memoryBytes)}, ${f.cpus} CPU(s), ${f.rotational === undefined ? 'disk kind unknown' : f.rotational ? 'rotational disk' : 'SSD'}`;
            return { changed: false, note: [facts, ...r.warnings].join('; ') };
          }),
        ),
      ),

      installs(
        `Packages: PostgreSQL ${v} and ${label} on every postgres host`,
        hosts.map((h) =>
          sequence(`Install PostgreSQL ${v} and ${label} on ${h.name}`, [
            onHost('file', `Keep postgresql-common from creating its own cluster on ${h.name}`, h.name, async () => ensureCreateClusterDisabled((await node(h.name)).host)),
            onHost('package', `Install the PostgreSQL ${v} server packages on ${h.name}`, h.name, async () => installPackages((await node(h.name)).host, postgresPackages(v))),
            onHost('package', `Install the ${label} extension files on ${h.name}`, h.name, async () => installVectorExtension(await node(h.name), inv)),
          ]),
        ),
      ),

      sequence(`Base instance on ${b}`, [
        onHost('command', `Prepare the data and socket directories on ${b}`, b, async () => prepareDirectories(await node(b))),
        onHost('command', `Initialise the database cluster on ${b} (checksums, SCRAM)`, b, async () => initCluster(await node(b), inv, ctx.secrets, await sizing())),
        onHost('file', `Write the PostgreSQL settings (sized to the hosts, profile ${inv.postgres.profile}) and pg_hba on ${b}`, b, async () => {
          const n = await node(b);
          return unlessPatroniManaged(n, v, async () => writeConfig(n, inv, await sizing()));
        }),
        onHost('service', `Start PostgreSQL on ${b}, or reload it when its settings changed`, b, async () => {
          const n = await node(b);
          return unlessPatroniManaged(n, v, () => ensureRunning(n, inv, ctx.secrets));
        }),
      ]),

      sequence('Roles and databases', [
        ...Object.values(DATABASES).flatMap((d): PlanNode[] => [
          sql(`Create the login role ${d.owner} on ${b}`, 'postgres', (c) => ensureLoginRole(c, d.owner, ctx.secrets, d.secret)),
          sql(`Create the database ${d.name} owned by ${d.owner}`, 'postgres', (c) => ensureDatabase(c, d.name, d.owner)),
        ]),
        ...(engine === 'ruvector' ? [sql(`Lock the ${label} image's default login role on ${b}`, 'postgres', lockImageLoginRole)] : []),
      ]),

      ...Object.values(DATABASES).map((d) =>
        sequence(`Schema of ${d.name}`, [
          sql(`Create the ${label} extension in ${d.name}`, d.name, (c) => ensureExtension(c, engine)),
          sql(`Apply schema migrations to ${d.name}`, d.name, async (c) => {
            const r = await applyMigrations(c, d.owner, await vectorNames(engine, (text, p) => c.query(text, p)));
            return r.applied.length ? { changed: true, note: `applied ${r.applied.join(', ')}` } : { changed: false };
          }),
          sql(`Ensure the HNSW indexes in ${d.name}`, d.name, async (c) => {
            const did = await ensureHnswIndexes(c, await vectorNames(engine, (text, p) => c.query(text, p)));
            return did.length ? { changed: true, note: did.join(', ') } : { changed: false };
          }),
          sql(`Set the HNSW search breadth (ef_search ${efSearch(inv.postgres, engine === 'pgvector' ? PGVECTOR_NAMES.efSearchGuc : undefined).value}) for ${d.name}`, d.name, async (c) =>
            ensureEfSearch(c, d.name, (await vectorNames(engine, (text, p) => c.query(text, p))).efSearchGuc, inv.postgres),
          ),
        ]),
      ),
    ];
  },

  criteria: [reachable, extensionInstalled, databases, schemaPresent, hnswIndexes, roundTrip, wrongDimension, connections, settingsCheck(0, 's0.postgres.settings'), efSearchCheck, indexMemoryCheck],
};
