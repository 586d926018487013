import type { Command } from 'commander';
import { clientTls, observeDeployed } from '../../components/deployed.js';
import { requireSprint, measureSprints } from '../../gate.js';
import { allRequiredPass } from '../../checks/run.js';
import { writableHost } from '../../components/databases.js';
import { pgbouncerDatabases } from '../../components/pgbouncer-pause.js';
import {
  changeExporterRole,
  changeHaproxyStats,
  changePatroniRest,
  changePatroniRole,
  changePgbouncerAdmin,
  changeRouted,
  findRotatable,
  NOT_ROTATED,
  ROTATABLE,
  verifyDirect,
  verifyHaproxyStats,
  verifyPgbouncerAdmin,
  verifyRest,
  verifyRouted,
  type Rotatable,
} from '../../components/rotation.js';
import { superuserOn } from '../../components/endpoints.js';
import { changeMetricsWeb, verifyMetricsWeb } from '../../components/metrics-rotation.js';
import type { RunContext } from '../../context.js';
import { withClient } from '../../db/client.js';
import { CriteriaError, HostError, UsageError } from '../../errors.js';
import { sequence, twoWay, type Change, type PlanNode, type StepKind } from '../../plan/step.js';
import { runSteps, summarize, type TaskContext } from '../../tasks/run.js';
import { emitJson, withContext } from '../setup.js';

/**
 * `dpgc rotate --role NAME | --all`: new passwords, applied in an order that
 * never refuses a client using the password in force (src/components/rotation.ts).
 * Rotations left pending by an interrupted run are completed first, with the
 * value recorded then. `--certs`: every certificate issued again, then.
 */
export async function rotateCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ role?: string[]; all?: boolean; certs?: boolean; pauseTimeout: number }>();
  if (!o.all && !o.role?.length && !o.certs) {
    throw new UsageError('say what to rotate: --role NAME (repeatable), --all, or --certs', { hint: `Roles: ${ROTATABLE.map((r) => r.user).join(', ')}. --certs issues every certificate again.` });
  }
  if (o.all && o.role?.length) throw new UsageError('--role and --all exclude each other', { hint: 'Use --all alone, or name each role with --role.' });
  const asked: Rotatable[] = [];
  for (const name of o.role ?? []) {
    const r = findRotatable(name);
    if (!r) {
      const why = (NOT_ROTATED as Record<string, string | undefined>)[name];
      throw new UsageError(why ? `${name} is not rotated by dpgc: ${why}` : `there is no role or secret "${name}" that dpgc rotates`, {
        hint: `Roles: ${ROTATABLE.map((x) => (x.user === x.secret ? x.user : `${x.user} (${x.secret})`)).join(', ')}.`,
      });
    }
    if (!asked.includes(r)) asked.push(r);
  }

  await withContext(cmd, async (ctx) => {
    const pending = await ctx.secrets.pendingNames();
    // An interrupted rotation first, whatever was asked: a half-rotated credential is the one to finish.
    const resumed = ROTATABLE.filter((r) => pending.includes(r.secret));
    const wanted = o.all ? [...ROTATABLE] : asked;
    const targets = [...resumed, ...wanted.filter((r) => !resumed.includes(r))];
    if (o.certs) await certsPreflight(ctx);
    const present = targets.length ? await preflight(ctx, targets, { all: o.all ?? false, resuming: resumed.length > 0 }) : [];
    const run = await runSteps(
      present.flatMap((r) => rotationSteps(ctx, r, { pauseTimeoutMs: o.pauseTimeout * 1000 })),
      { ...ctx.options, mode: ctx.options.dryRun ? 'observe' : 'apply', logger: ctx.logger },
    ).catch(async (e: unknown) => {
      const left = await ctx.secrets.pendingNames();
      if (left.length) {
        ctx.logger.warn(
          `${left.join(', ')}: the new password is recorded as pending in ${ctx.secrets.file}; the next \`dpgc rotate\` completes the rotation with it (until then dpgc's own logins try it first, and sprints refuse to run).`,
        );
      }
      throw e;
    });
    const skipped = targets.filter((r) => !present.includes(r)).map((r) => r.user);
    const caveats = present.filter((r) => r.caveat).map((r) => `${r.user}: ${r.caveat}`);
    const notRotated = o.all ? Object.entries(NOT_ROTATED).map(([k, why]) => `${k}: ${why}`) : [];
    for (const c of caveats) ctx.logger.warn(`not seamless: ${c}`);
    if (skipped.length) ctx.logger.info(`Not created yet, nothing to rotate: ${skipped.join(', ')}.`);
    for (const n of notRotated) ctx.logger.info(`Not rotated: ${n}`);
    if (!ctx.options.dryRun && present.length) {
      ctx.logger.info(`Rotated: ${present.map((r) => r.user).join(', ')}. The new passwords are in ${ctx.secrets.file}${present.some((r) => r.kind === 'routed') ? '; give applications theirs from there' : ''}.`);
    }
    const certs = o.certs ? await rotateCerts(ctx) : undefined;
    if (ctx.options.json) {
      emitJson({
        ok: certs?.passed ?? true,
        dryRun: ctx.options.dryRun,
        rotated: present.map((r) => ({ role: r.user, secret: r.secret, resumed: resumed.includes(r), ...(r.caveat ? { caveat: r.caveat } : {}) })),
        skipped,
        notRotated: Object.keys(o.all ? NOT_ROTATED : {}),
        tasks: summarize(run),
        steps: run.outcomes,
        ...(certs ? { certs } : {}),
      });
    }
    if (certs && !certs.passed) {
      const failing = certs.results.filter((r) => r.verdict === 'fail' && r.required).map((r) => r.id);
      throw new CriteriaError(`the certificates were issued again, but ${failing.length} criteria fail: ${failing.join(', ')}`, {
        hint: 'Fix what the failing checks say, then run `dpgc sprint 5` (safe to repeat); `dpgc rotate --certs` may be run again too.',
      });
    }
  }, { changesHosts: true });
}

/**
 * Certificates are issued by sprint 4 (pgBackRest's TLS) and sprint 5 (every
 * other TLS endpoint): the steps that keep them current already install a
 * certificate and reload what serves it (PostgreSQL and PgBouncer reload,
 * the exporters read theirs at each handshake; pgBackRest's TLS server is
 * restarted). Rotating is those steps with every certificate older than this
 * run issued again, so there is one way a certificate reaches a host. The
 * earlier sprints' criteria are not re-run (no PITR drill): the checks that
 * use the new certificates are, sprint 5's and pgBackRest's own.
 */
async function rotateCerts(ctx: RunContext): Promise<{ passed: boolean; tasks: { changed: number; unchanged: number }; steps: TaskContext['outcomes']; results: Awaited<ReturnType<typeof measureSprints>> }> {
  const [s4, s5] = await Promise.all([requireSprint(4), requireSprint(5)]);
  const since = new Date();
  const c: RunContext = { ...ctx, reissueCertsBefore: since };
  ctx.logger.info(`Issuing every certificate again (those issued before ${since.toISOString()}), through sprint 4's and sprint 5's steps:`);
  const run = await runSteps([...s4.tasks(c), ...s5.tasks(c)], { ...ctx.options, mode: ctx.options.dryRun ? 'observe' : 'apply', logger: ctx.logger });
  const tasks = summarize(run);
  if (ctx.options.dryRun) return { passed: true, tasks, steps: run.outcomes, results: [] };
  ctx.logger.info(`${tasks.changed} steps changed something (each names the certificate it issued), ${tasks.unchanged} were already done.`);
  ctx.logger.info('Measuring the criteria that use them:');
  const results = await measureSprints(c, [s4, s5], { headings: false, only: (k) => s5.criteria.includes(k) || CERT_USING_S4.includes(k.id) });
  return { passed: allRequiredPass(results), tasks, steps: run.outcomes, results };
}

/** Sprint 4's criteria that go through pgBackRest's TLS server (the others read state, or restore for minutes). */
const CERT_USING_S4 = ['s4.pgbackrest.check', 's4.archive.working'];

/** --certs needs a cluster on TLS: before sprint 5 there is little to rotate, and its steps would be sprint 5 itself. */
async function certsPreflight(ctx: RunContext): Promise<void> {
  const on = await clientTls(ctx).catch(() => undefined);
  if (on === undefined) {
    throw new UsageError("dpgc rotate --certs needs a cluster that serves TLS: sprint 5 has not turned it on (or no Patroni member answers)", {
      hint: 'Run `dpgc up` (or `dpgc sprint 5`) first; `dpgc status` shows what is down. Nothing was changed.',
    });
  }
}

/**
 * Before anything changes: the cluster Patroni runs, every member and every
 * PgBouncer answering (a rotation rewrites what each of them holds), no
 * application database paused by someone else. Returns the targets whose
 * role exists (with --all, one that does not yet is skipped, and said).
 */
async function preflight(ctx: RunContext, targets: Rotatable[], o: { all: boolean; resuming: boolean }): Promise<Rotatable[]> {
  const inv = ctx.inventory;
  if (!(await observeDeployed(inv, ctx.pool)).patroni) {
    throw new UsageError('dpgc rotate needs the cluster Patroni runs: sprint 3 has not set it up yet', { hint: 'Run `dpgc up` first; before then a password is changed by editing the secrets file and re-running the sprints.' });
  }
  const down: string[] = [];
  for (const h of inv.hosts.filter((x) => x.roles.includes('postgres'))) {
    await withClient(ctx.secrets, superuserOn(inv, h), (c) => c.query('SELECT 1')).catch((e: unknown) => down.push(`${h.name} (${(e as Error).message.split('\n')[0]})`));
  }
  for (const h of inv.hosts.filter((x) => x.roles.includes('pgbouncer'))) {
    const dbs = await pgbouncerDatabases(ctx.secrets, inv, h).catch((e: unknown) => (down.push(`PgBouncer on ${h.name} (${(e as Error).message.split('\n')[0]})`), []));
    const paused = dbs.filter((d) => d.paused).map((d) => d.name);
    // Paused by an interrupted rotation of ours: the re-run resumes it. Otherwise it is someone else's pause.
    if (paused.length && !o.resuming) {
      throw new HostError(`PgBouncer on ${h.name} has ${paused.join(', ')} paused, and no rotation of dpgc's is under way`, {
        hint: `Someone paused it on purpose (a restart of PostgreSQL?): RESUME it in PgBouncer's console when they are done, then rotate. Nothing was changed.`,
      });
    }
  }
  if (down.length) {
    throw new HostError(`a rotation changes what every member and every PgBouncer holds, and these do not answer: ${down.join('; ')}`, {
      hint: 'Bring them back (`dpgc status` shows what is down), then run `dpgc rotate` again. Nothing was changed.',
    });
  }
  const leader = await writableHost(inv, ctx.secrets);
  const roles = await withClient(ctx.secrets, superuserOn(inv, leader), async (c) => (await c.query<{ r: string }>('SELECT rolname AS r FROM pg_roles')).rows.map((x) => x.r));
  const exists = (r: Rotatable) => !['routed', 'exporter', 'patroni'].includes(r.kind) || roles.includes(r.user);
  const missing = targets.filter((r) => !exists(r));
  if (missing.length && !o.all) {
    throw new UsageError(`${missing.map((r) => r.user).join(', ')} does not exist on ${leader.name} yet, so there is no password to rotate`, { hint: 'The application roles come with sprint 5: run `dpgc up` first.' });
  }
  return targets.filter(exists);
}

/** One credential: record the new value, apply it in its order, prove it, save it. */
function rotationSteps(ctx: RunContext, r: Rotatable, o: { pauseTimeoutMs: number }): PlanNode[] {
  const file = ctx.secrets.file;
  let next = '';
  let old = '';
  const how = HOW[r.kind];
  return [
    sequence(`Rotate ${r.user}'s password (${r.secret})`, [
      twoWay('file', `Record a new password for ${r.user} as pending in ${file}`, undefined, {
        apply: async () => {
          old = await ctx.secrets.get(r.secret);
          const b = await ctx.secrets.beginRotation(r.secret);
          next = b.value;
          return { changed: !b.resumed, note: b.resumed ? 'resuming the rotation an earlier run began, with its value' : 'generated' };
        },
        observe: async () => ((await ctx.secrets.pending(r.secret)) ? { changed: false, note: 'an earlier run began it: its value is used' } : { changed: true, note: 'would generate one' }),
      }),
      twoWay(how.kind, how.change(r), undefined, {
        apply: () => CHANGE[r.kind](ctx, r, next, o),
        observe: async () => ({ changed: true, would: [how.change(r)] }),
      }),
      twoWay('wait', how.verify(r), undefined, {
        apply: () => VERIFY[r.kind](ctx, r, next, old),
        observe: async () => ({ changed: false, note: 'checked in a real run' }),
      }),
      twoWay('file', `Save ${r.user}'s new password in ${file} (the old one is gone)`, undefined, {
        apply: async () => {
          await ctx.secrets.completeRotation(r.secret);
          return { changed: true };
        },
        observe: async () => ({ changed: true }),
      }),
    ]),
  ];
}

const CHANGE: Record<Rotatable['kind'], (ctx: RunContext, r: Rotatable, next: string, o: { pauseTimeoutMs: number }) => Promise<Change>> = {
  routed: (ctx, r, next, o) => changeRouted(ctx, r, next, o),
  exporter: changeExporterRole,
  'pgbouncer-admin': changePgbouncerAdmin,
  patroni: changePatroniRole,
  'patroni-rest': changePatroniRest,
  'haproxy-stats': changeHaproxyStats,
  'metrics-web': (ctx, _r, next) => changeMetricsWeb(ctx, next),
};

const VERIFY: Record<Rotatable['kind'], (ctx: RunContext, r: Rotatable, next: string, old: string) => Promise<Change>> = {
  routed: verifyRouted,
  exporter: verifyDirect,
  'pgbouncer-admin': verifyPgbouncerAdmin,
  patroni: verifyDirect,
  'patroni-rest': (ctx, _r, _next, old) => verifyRest(ctx, old),
  'haproxy-stats': verifyHaproxyStats,
  'metrics-web': (ctx, _r, next, old) => verifyMetricsWeb(ctx, next, old),
};

const HOW: Record<Rotatable['kind'], { kind: StepKind; change: (r: Rotatable) => string; verify: (r: Rotatable) => string }> = {
  routed: {
    kind: 'sql',
    change: (r) =>
      `Change ${r.user}'s password with PgBouncer's databases paused (clients wait): ALTER ROLE on the leader, replayed by the replicas, the new verifier in PgBouncer's auth file, RELOAD, one login with the new password (PgBouncer's new SCRAM keys), RESUME`,
    verify: (r) => `Query as ${r.user} with the new password through PgBouncer (every database alias it uses); the old password refused`,
  },
  exporter: {
    kind: 'sql',
    change: (r) => `Change ${r.user}'s password on the leader, then postgres_exporter's environment file on every member, and restart it`,
    verify: (r) => `Log in as ${r.user} with the new password on every member; the old one refused`,
  },
  'pgbouncer-admin': {
    kind: 'file',
    change: (r) => `Put ${r.user}'s new verifier in PgBouncer's auth file and RELOAD, then the PgBouncer exporter's environment file, and restart it`,
    verify: (r) => `Log in to PgBouncer's console as ${r.user} with the new password; the old one refused`,
  },
  patroni: {
    kind: 'sql',
    change: (r) => `Change ${r.user}'s password on the leader, replayed by the replicas, then patroni.yml on every member, and reload Patroni`,
    verify: (r) => `Log in as ${r.user} with the new password on every member; the old one refused`,
  },
  'patroni-rest': {
    kind: 'file',
    change: () => "Write Patroni's new REST password into patroni.yml on every member and reload Patroni, until each accepts it",
    verify: () => "Patroni's REST API refuses the old password on every member",
  },
  'haproxy-stats': {
    kind: 'file',
    change: () => "Write HAProxy's new stats password into haproxy.cfg and reload HAProxy (its old workers keep their connections)",
    verify: () => "HAProxy's stats page takes the new password and refuses the old one",
  },
  'metrics-web': {
    kind: 'file',
    change: () =>
      "Have every metrics endpoint accept the new password under its own user beside the old one (web configs and the PgBouncer exporter's users file, read on every request); move Prometheus (one reload), amtool and Grafana's datasource to it; then drop the old user",
    verify: () => 'Every metrics endpoint takes the new password and refuses the old one',
  },
};
