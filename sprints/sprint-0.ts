import { sprint0Checks } from '../src/checks/sprint0.js';
import { ensureDatabase, ensureExtension, ensureLoginRole, lockImageLoginRole, writableHost } from '../src/components/databases.js';
import { DATABASES, firstPostgres, superuserOn } from '../src/components/endpoints.js';
import { dataDirState, ensureCreateClusterDisabled, ensureRunning, initCluster, PG_SERVICE, postgresPackages, prepareDirectories, writeConfig } from '../src/components/postgres.js';
import { installPackages } from '../src/components/packages.js';
import { preflight } from '../src/components/preflight.js';
import { applyMigrations, ensureHnswIndexes } from '../src/components/schema.js';
import { ENGINES, vectorNames } from '../src/components/vector.js';
import { installVectorExtension } from '../src/components/vector-install.js';
import type { RunContext } from '../src/context.js';
import { withClient, type Client } from '../src/db/client.js';
import { liveOnly, parallel, perHost, sequence, step, type Task } from '../src/tasks/run.js';
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
    const asSuperuser = async <T>(db: string, fn: (c: Client) => Promise<T>) => withClient(ctx.secrets, superuserOn(inv, await writableHost(inv, ctx.secrets), db), fn);
    const live = liveOnly(ctx.options.dryRun);
    const patroniManaged = async () => (await dataDirState((await node(b)).host, (await node(b)).paths, v)).kind === 'patroni';

    return [
      parallel(
        'Preflight: OS, privileges, disk and ports, before anything changes',
        hosts.map((h) =>
          step(`Check ${h.name} can host PostgreSQL`, async () => {
            const n = await node(h.name);
            const r = await preflight(n, {
              diskPath: n.paths.pgData,
              ports: [
                { port: inv.ports.postgres, services: [PG_SERVICE, 'patroni'], ownPath: n.paths.pgData, socketLock: `${n.paths.pgSocketDir}/.s.PGSQL.${inv.ports.postgres}.lock` },
              ],
            });
            for (const w of r.warnings) ctx.logger.warn(`${h.name}: ${w}`);
            return { changed: false, ...(r.warnings.length ? { note: r.warnings.join('; ') } : {}) };
          }),
        ),
      ),

      installs(
        `Packages: PostgreSQL ${v} and ${label} on every postgres host`,
        hosts.map((h) =>
          sequence(`Install PostgreSQL ${v} and ${label} on ${h.name}`, [
            step(`Keep postgresql-common from creating its own cluster on ${h.name}`, async () => ensureCreateClusterDisabled((await node(h.name)).host)),
            step(`Install the PostgreSQL ${v} server packages on ${h.name}`, async () => installPackages((await node(h.name)).host, postgresPackages(v))),
            step(`Install the ${label} extension files on ${h.name}`, async () => installVectorExtension(await node(h.name), inv)),
          ]),
        ),
      ),

      sequence(`Base instance on ${b}`, [
        step(`Prepare the data and socket directories on ${b}`, async () => prepareDirectories(await node(b))),
        step(`Initialise the database cluster on ${b} (checksums, SCRAM)`, async () => initCluster(await node(b), inv, ctx.secrets)),
        step(`Write the PostgreSQL settings and pg_hba on ${b}`, async () =>
          (await patroniManaged()) ? { changed: false, note: 'managed by Patroni' } : writeConfig(await node(b), inv),
        ),
        step(`Start PostgreSQL on ${b}, or reload it when its settings changed`, async () =>
          (await patroniManaged()) ? { changed: false, note: 'managed by Patroni' } : ensureRunning(await node(b), inv, ctx.secrets),
        ),
      ]),

      sequence('Roles and databases', [
        ...Object.values(DATABASES).flatMap((d): Task[] => [
          step(`Create the login role ${d.owner} on ${b}`, live(() => asSuperuser('postgres', (c) => ensureLoginRole(c, d.owner, ctx.secrets, d.secret)))),
          step(`Create the database ${d.name} owned by ${d.owner}`, live(() => asSuperuser('postgres', (c) => ensureDatabase(c, d.name, d.owner)))),
        ]),
        ...(engine === 'ruvector' ? [step(`Lock the ${label} image's default login role on ${b}`, live(() => asSuperuser('postgres', lockImageLoginRole)))] : []),
      ]),

      ...Object.values(DATABASES).map((d) =>
        sequence(`Schema of ${d.name}`, [
          step(`Create the ${label} extension in ${d.name}`, live(() => asSuperuser(d.name, (c) => ensureExtension(c, engine)))),
          step(
            `Apply schema migrations to ${d.name}`,
            live(() =>
              asSuperuser(d.name, async (c) => {
                const r = await applyMigrations(c, d.owner, await vectorNames(engine, (sql, p) => c.query(sql, p)));
                return r.applied.length ? { changed: true, note: `applied ${r.applied.join(', ')}` } : { changed: false };
              }),
            ),
          ),
          step(
            `Ensure the HNSW indexes in ${d.name}`,
            live(() =>
              asSuperuser(d.name, async (c) => {
                const did = await ensureHnswIndexes(c, await vectorNames(engine, (sql, p) => c.query(sql, p)));
                return did.length ? { changed: true, note: did.join(', ') } : { changed: false };
              }),
            ),
          ),
        ]),
      ),
    ];
  },

  criteria: (_ctx: RunContext) => sprint0Checks(),
};
