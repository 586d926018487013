import type { Command } from 'commander';
import { allRequiredPass } from '../../checks/run.js';
import { chooseBackupSet, describeTarget, restoreInPlace } from '../../components/pitr-inplace.js';
import { dropScratch, parseTargetTime, recoveryWindow, restoreScratch, scratchEndpoint, validateTargetText, type RestoreTarget } from '../../components/pitr.js';
import { repoNode, stanzaInfo, type StanzaInfo } from '../../components/pgbackrest.js';
import { caPathsFor } from '../../components/ca.js';
import { switchAndWaitArchived } from '../../components/pitr-drill.js';
import type { RunContext } from '../../context.js';
import { CriteriaError, UsageError } from '../../errors.js';
import { measureSprints, requireSprint } from '../../gate.js';
import { confirmClusterName } from '../prompt.js';
import { emitJson, withContext } from '../setup.js';

/**
 * `dpgc restore --target-time T | --target-lsn L | --target-name N --scratch [--keep]`:
 * the repository restored to a point in time into a scratch instance on the
 * backup host; the cluster is never touched. Without --keep the instance is
 * removed once it has reached its target and answered.
 * `… --in-place`: the whole cluster back to the target (restoreInPlaceCommand).
 */
export async function restoreCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<Flags>();
  if (o.dropScratch) {
    await withContext(cmd, async (ctx) => {
      const r = await dropScratch(ctx.inventory, ctx.pool);
      ctx.logger.info(r.changed ? 'Scratch instance stopped and removed.' : 'No scratch instance to remove.');
      if (ctx.options.json) emitJson({ ok: true, removed: r.changed });
    }, { changesHosts: true });
    return;
  }
  const given = [o.targetTime, o.targetLsn, o.targetName].filter((x) => x !== undefined);
  if (given.length !== 1) throw new UsageError('give exactly one target: --target-time, --target-lsn or --target-name', { hint: 'For example: dpgc restore --target-time 2026-12-02T08:15:00Z --scratch' });
  if (o.inPlace && o.scratch) {
    throw new UsageError('--in-place and --scratch exclude each other: the restore goes either over the cluster or beside it', {
      hint: 'Pass --scratch to look at the data as it was (the cluster untouched), or --in-place to put the whole cluster back to the target.',
    });
  }
  if (o.inPlace) return restoreInPlaceCommand(cmd, o);
  if (!o.scratch) {
    throw new UsageError('refusing to restore onto the running cluster: say where the restore goes', {
      hint: 'Pass --scratch: a separate instance on the backup host, the cluster untouched. --in-place puts the whole cluster back to the target (writes after it are lost).',
    });
  }
  await withContext(cmd, async (ctx) => {
    const inv = ctx.inventory;
    const { target } = await readTarget(ctx, o);
    if (ctx.options.dryRun) {
      ctx.logger.dry(`would restore the repository to ${describe(target)} into a scratch instance on the backup host, port ${inv.ports.restore_scratch}`);
      return;
    }
    // Close and archive the current WAL segment first, so a target up to now is in the repository.
    // With the cluster down (the case a restore is often for) there is nothing newer to archive.
    await switchAndWaitArchived(inv, ctx.secrets, 30_000).catch((e: Error) => ctx.logger.warn(`could not archive the newest WAL first (${e.message.split('\n')[0]}); restoring from what the repository holds`));
    const s = await restoreScratch(inv, ctx.pool, ctx.secrets, target);
    const ep = scratchEndpoint(inv, s.host, 'postgres');
    const doc = {
      ok: true,
      target: describe(target),
      host: s.host.name,
      address: ep.address,
      port: s.port,
      dir: s.dir,
      restoreSeconds: s.restoreMs / 1000,
      recoverySeconds: s.recoveryMs / 1000,
      walReplayedBytes: s.wal.bytes,
      kept: Boolean(o.keep),
      tls: s.tls,
    };
    ctx.logger.info(
      `Restored to ${doc.target} on ${s.host.name}: restore ${doc.restoreSeconds.toFixed(1)} s, recovery ${doc.recoverySeconds.toFixed(1)} s` +
        (s.wal.bytes === undefined ? '' : `, ${(s.wal.bytes / 1048576).toFixed(1)} MiB of WAL replayed`),
    );
    if (o.keep) {
      const tls = s.tls ? ` sslmode=verify-full sslrootcert=${caPathsFor(inv.file).cert}` : '';
      ctx.logger.info(`The scratch instance runs at ${ep.address}:${s.port} (data in ${s.dir}); connect as postgres with the cluster's superuser password${s.tls ? ', over TLS' : ''}, e.g.\n  psql "host=${ep.address} port=${s.port} user=postgres dbname=postgres${tls}"\nRemove it when done: dpgc restore --drop-scratch`);
    } else {
      await dropScratch(inv, ctx.pool);
      ctx.logger.info('Scratch instance removed (pass --keep to keep it).');
    }
    if (ctx.options.json) emitJson(doc);
  }, { changesHosts: true });
}

type Flags = { targetTime?: string; targetLsn?: string; targetName?: string; scratch?: boolean; keep?: boolean; inPlace?: boolean; dropScratch?: boolean };

/** The target, checked against the repository's recovery window (a time) or its form (an LSN, a name). */
async function readTarget(ctx: RunContext, o: Flags): Promise<{ target: RestoreTarget; info: StanzaInfo | undefined }> {
  const info = await stanzaInfo(ctx.inventory, await repoNode(ctx.inventory, ctx.pool));
  let target: RestoreTarget;
  if (o.targetTime !== undefined) target = { type: 'time', time: parseTargetTime(o.targetTime, recoveryWindow(info, new Date())), text: o.targetTime };
  else if (o.targetLsn !== undefined) target = { type: 'lsn', lsn: o.targetLsn };
  else target = { type: 'name', name: o.targetName! };
  validateTargetText(target);
  return { target, info };
}

/**
 * `dpgc restore … --in-place`: the whole cluster back to the target
 * (components/pitr-inplace.ts), then sprint 3's criteria measured: the
 * restore is done when the cluster is whole again, not when the data is back.
 */
async function restoreInPlaceCommand(cmd: Command, o: Flags): Promise<void> {
  await withContext(cmd, async (ctx) => {
    const inv = ctx.inventory;
    const { target, info } = await readTarget(ctx, o);
    const what = describe(target);
    const flag = o.targetTime !== undefined ? `--target-time ${o.targetTime}` : o.targetLsn !== undefined ? `--target-lsn ${o.targetLsn}` : `--target-name ${o.targetName}`;
    const command = `dpgc restore ${flag} --in-place --yes`;
    if (ctx.options.dryRun) {
      const set = chooseBackupSet(info, target);
      ctx.logger.dry(
        `would stop Patroni on every member (the leader last), remove ${inv.cluster} from etcd, restore the leader to ${what}${set ? ` from backup ${set}` : ''} (pgbackrest --delta), start Patroni over it, back it up, restore the replicas from that backup, and measure sprint 3's criteria`,
      );
      return;
    }
    await confirmClusterName(ctx, `This puts the whole cluster back to ${what}: every write after it is lost, and the cluster is down until the leader is restored. Cluster`, 'nothing was restored');
    const r = await restoreInPlace(inv, ctx.pool, ctx.secrets, { target, info, logger: ctx.logger, command });
    ctx.logger.info(
      `Restored the cluster to ${what} in ${r.totalSeconds.toFixed(1)} s: ${r.leader} leads on timeline ${r.timeline ?? '?'}${r.set ? ` (from backup ${r.set}` : ' ('}${r.walReplayedBytes === undefined ? '' : `, ${(r.walReplayedBytes / 1048576).toFixed(1)} MiB of WAL replayed`}), ${r.replicas.join(', ')} restored from backup ${r.newSet}.`,
    );
    ctx.logger.info("Sprint 3's criteria on the restored cluster:");
    const started = Date.now();
    const results = await measureSprints(ctx, [await requireSprint(3)], { headings: false });
    const passed = allRequiredPass(results);
    const doc = { ok: passed, target: what, ...r, sprint3: { passed, seconds: (Date.now() - started) / 1000, results } };
    if (ctx.options.json) emitJson(doc);
    if (!passed) {
      const failed = results.filter((x) => x.verdict === 'fail' && x.required);
      throw new CriteriaError(`the data is restored to ${what}, but ${failed.length} of sprint 3's criteria fail:\n  ${failed.map((x) => `${x.id}: ${x.detail ?? ''}`).join('\n  ')}`, {
        hint: 'Each failed criterion is listed above with its remedy; `dpgc sprint 3` converges the cluster (it is safe to re-run).',
      });
    }
  }, { changesHosts: true });
}

function describe(t: RestoreTarget): string {
  return describeTarget(t);
}
