import { rolesDeclared, rolesEnforced, scramOnly } from '../src/checks/access.js';
import { writableHost } from '../src/components/databases.js';
import { superuserOn } from '../src/components/endpoints.js';
import { pgbouncerTargets } from '../src/components/haproxy.js';
import { ensureHbaAsRendered } from '../src/components/patroni.js';
import { ensurePgbouncer } from '../src/components/pgbouncer.js';
import { APP_DATABASES, APP_ROLE_LIST, ensureAppRole, ensureGrants } from '../src/components/roles.js';
import type { Client } from '../src/db/client.js';
import { readsLive, sqlStep } from '../src/plan/sql.js';
import { onHost, parallel, sequence, type Outcome } from '../src/plan/step.js';
import type { Sprint } from './types.js';

/**
 * Sprint 5, first part: access control. Applications get login roles of
 * their own (`app_user` writes rows, `readonly_user` reads; neither can
 * change the schema, and tables an owner creates later are covered), routed
 * by PgBouncer; every node authenticates with SCRAM only, and a pg_hba rule
 * added by hand is taken out again.
 *
 * Not here yet (issue 14): TLS on every connection, credential rotation,
 * pgaudit, the firewall and the security alerts.
 */
export const sprint5: Sprint = {
  id: 5,
  title: 'Access control: application roles with least privilege, SCRAM only on every node',
  roles: ['postgres', 'pgbouncer'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const node = (name: string) => ctx.pool.node(name);
    // Roles and grants live in the catalog, which replicates: sent once, to whichever node takes writes.
    const sql = (title: string, db: string, run: (c: Client) => Promise<Outcome>) =>
      sqlStep(title, undefined, { secrets: ctx.secrets, endpoint: async () => superuserOn(inv, await writableHost(inv, ctx.secrets), db), run });

    return [
      sequence('Application roles', [
        ...APP_ROLE_LIST.map((r) => sql(`Create the login role ${r.user} (no superuser, no DDL, member of nothing)`, 'postgres', (c) => ensureAppRole(c, r, ctx.secrets))),
        ...APP_DATABASES.map((d) =>
          sql(`Grant ${APP_ROLE_LIST.map((r) => r.user).join(' and ')} their privileges in ${d.name}, now and for tables ${d.owner} creates later`, d.name, (c) => ensureGrants(c, d.name, d.owner)),
        ),
      ]),
      parallel(
        'PgBouncer routes the application roles',
        ctx.pool.specs('pgbouncer').map((h) =>
          readsLive('file', `Add ${APP_ROLE_LIST.map((r) => r.user).join(' and ')} to PgBouncer's auth file on ${h.name} and reload it`, h.name, async () =>
            ensurePgbouncer(ctx, await node(h.name), await pgbouncerTargets(ctx)),
          ),
        ),
      ),
      parallel(
        'SCRAM only on every node',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Keep pg_hba on ${h.name} exactly as rendered (SCRAM; peer for postgres on the socket) and reload it if a rule was added by hand`, h.name, async () =>
            ensureHbaAsRendered(inv, await node(h.name)),
          ),
        ),
      ),
    ];
  },

  criteria: [rolesDeclared, rolesEnforced, scramOnly],
};
