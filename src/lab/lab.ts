import { statePathFor } from '../state.js';
import { existsSync, lstatSync, readdirSync, realpathSync } from 'node:fs';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Inventory } from '../config/schema.js';
import { hostPaths } from '../config/paths.js';
import { ConfigError } from '../errors.js';
import { LocalHost } from '../hosts/local.js';
import { assertOwnedPath, pathProblem } from '../hosts/owned.js';
import { serviceManager } from '../hosts/services.js';
import type { Logger } from '../output/log.js';
import { checkLabDirPath, claimDir, MARKER, ownedBy, readMarker } from './marker.js';

/** Stop order: clients of a service before the service, etcd and sshd last. */
const STOP_ORDER = ['pool', 'pgbouncer-exporter', 'pgbouncer', 'haproxy', 'prometheus', 'postgres-exporter', 'mtail', 'node-exporter', 'patroni', 'postgresql', 'etcd', 'sshd'];

const HINT_ROOTS = 'Every lab host needs `root: <lab dir>/<host name>`, as `dpgc lab init` writes it.';

/**
 * The lab's directory: the common parent of its hosts' roots. Every root must
 * be a clean absolute path (`..` would let `/lab/../..` reach `/`), directly
 * inside one directory that may be a lab at all (never `/`, `/tmp`, `/usr`…).
 */
export function labDir(inv: Inventory): string {
  if (!inv.lab) throw new ConfigError(`${inv.file} is not a lab inventory (no \`lab: true\`); \`dpgc lab down\` only removes labs`);
  for (const h of inv.hosts) {
    const problem = h.root ? pathProblem(h.root) : 'empty: a lab host needs its own root directory';
    if (problem) throw new ConfigError(`${inv.file}: the root of lab host ${h.name}, ${JSON.stringify(h.root)}, is unsafe: ${problem}`, { hint: HINT_ROOTS });
  }
  const parents = new Set(inv.hosts.map((h) => posix.dirname(h.root)));
  const [dir] = parents;
  if (parents.size !== 1 || !dir) {
    throw new ConfigError(`${inv.file}: lab hosts do not share one lab directory (roots: ${inv.hosts.map((h) => h.root).join(', ')})`, { hint: HINT_ROOTS });
  }
  checkLabDirPath(dir, 'config');
  return dir;
}

/**
 * Before a command changes a lab's hosts: the lab directory and every host
 * root exist and carry this inventory's marker. They are created (and marked)
 * when missing (a lab removed by `lab down` under a kept inventory); one that
 * exists without the marker is refused, since `lab down` would then delete
 * something dpgc did not create.
 */
export async function claimLabDirs(inv: Inventory): Promise<string> {
  const dir = labDir(inv);
  const base = { inventory: inv.file, cluster: inv.cluster };
  await claimDir(dir, { ...base, dpgc: 'lab' }, 'config');
  for (const h of inv.hosts) await claimDir(h.root, { ...base, dpgc: 'host', host: h.name }, 'config');
  return dir;
}

export interface LabDownResult {
  dryRun: boolean;
  /** `host/service` stopped (or, with --dry-run, that would be). */
  stopped: string[];
  /** Directories removed (or that would be). */
  removed: string[];
  /** Entries of the lab directory left alone: dpgc did not make them. */
  kept: string[];
}

/**
 * Stops every process the lab started, by its pid file only (never by name:
 * a foreign postgres on this machine is none of our business), then removes
 * exactly the directories carrying this inventory's marker. Everything is
 * checked before anything is touched: one root without the marker and
 * nothing is stopped or removed.
 */
export async function labDown(inv: Inventory, logger: Logger, o: { dryRun: boolean } = { dryRun: false }): Promise<LabDownResult> {
  const dir = labDir(inv);
  const result: LabDownResult = { dryRun: o.dryRun, stopped: [], removed: [], kept: [] };
  const labExists = existsSync(dir);
  if (labExists) checkOwned(inv, dir);
  const roots = inv.hosts.filter((h) => existsSync(h.root));
  if (roots.length && !labExists) throw new ConfigError(`${inv.file}: ${dir} is gone but host roots remain`, { hint: 'Remove them by hand.' });

  const all: { host: string; name: string; pid: number; stop: () => Promise<{ changed: boolean }> }[] = [];
  for (const spec of roots) {
    const paths = hostPaths(inv, spec);
    if (!existsSync(paths.runDir)) continue;
    const host = new LocalHost({ name: spec.name, address: spec.address, dryRun: false, logger });
    const services = serviceManager(host, { services: 'supervised' }, paths);
    for (const f of await readdir(paths.runDir)) {
      if (!f.endsWith('.pid')) continue;
      const name = f.slice(0, -4);
      const st = await services.status({ name });
      all.push({ host: spec.name, name, pid: st.running ? st.pid : 0, stop: () => services.stop({ name, stopTimeoutMs: 90_000 }) });
    }
  }
  if (o.dryRun) {
    for (const a of all.filter((x) => x.pid).sort((x, y) => rank(x.name) - rank(y.name))) {
      logger.dry(`would stop ${a.name} on ${a.host} (pid ${a.pid})`);
      result.stopped.push(`${a.host}/${a.name}`);
    }
  } else {
    // One service kind at a time across every host (all Patroni before any etcd), hosts in parallel.
    for (const r of [...new Set(all.map((a) => rank(a.name)))].sort((x, y) => x - y)) {
      await Promise.all(
        all
          .filter((a) => rank(a.name) === r)
          .map(async (a) => {
            if ((await a.stop()).changed) {
              result.stopped.push(`${a.host}/${a.name}`);
              logger.info(`Stopped ${a.name} on ${a.host}`);
            }
          }),
      );
    }
  }

  if (labExists) await removeOwned(inv, dir, result, logger, o.dryRun);
  // Which sprints passed describes hosts that are gone now. Kept, it made the next `dpgc up` render
  // sprint 3's routing (PgBouncer through HAProxy) during sprint 1, on hosts without HAProxy.
  if (o.dryRun) {
    if (existsSync(statePathFor(inv.file))) logger.dry(`would remove ${statePathFor(inv.file)}`);
  } else await rm(statePathFor(inv.file), { force: true });
  return result;
}

/** The lab directory and every existing host root carry this inventory's marker, and are what they claim to be. */
function checkOwned(inv: Inventory, dir: string): void {
  const hint = `dpgc removes only what it created. If this lab was made by an older dpgc (before ${MARKER} markers), stop its processes and remove it by hand; otherwise fix \`root:\` in ${inv.file}.`;
  if (lstatSync(dir).isSymbolicLink() || realpathSync(dir) !== dir) throw new ConfigError(`${inv.file}: the lab directory ${dir} is (or passes through) a symbolic link; refusing to remove anything`, { hint });
  const m = readMarker(dir);
  if (!m || m.dpgc !== 'lab') throw new ConfigError(`${inv.file}: ${dir} does not carry dpgc's lab marker (${MARKER}); \`lab down\` stops and removes nothing in a directory dpgc did not create`, { hint });
  if (m.inventory !== inv.file) {
    throw new ConfigError(`${dir} belongs to the lab of ${m.inventory}, not ${inv.file}; refusing to remove it`, { hint: `Run \`dpgc lab down -c ${m.inventory}\` to remove that lab.` });
  }
  for (const h of inv.hosts) {
    if (!existsSync(h.root)) continue;
    if (lstatSync(h.root).isSymbolicLink() || !ownedBy(h.root, inv.file, 'host', h.name)) {
      throw new ConfigError(`${inv.file}: host ${h.name}'s root ${h.root} does not carry dpgc's marker for it (${MARKER}); \`lab down\` stops and removes nothing`, { hint });
    }
  }
}

/** Removes each marked directory inside the lab, then the lab directory when nothing foreign is left in it. */
async function removeOwned(inv: Inventory, dir: string, result: LabDownResult, logger: Logger, dryRun: boolean): Promise<void> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === MARKER) continue;
    const path = `${dir}/${entry.name}`;
    const m = entry.isDirectory() ? readMarker(path) : undefined;
    if (!m || m.inventory !== inv.file || m.dpgc === 'lab') {
      result.kept.push(path);
      continue;
    }
    assertOwnedPath(path, [dir], `${m.dpgc === 'host' ? `root of lab host ${m.host ?? '?'}` : `lab ${m.dpgc} directory`}`);
    if (dryRun) logger.dry(`would remove ${path}`);
    else await rm(path, { recursive: true, force: true });
    result.removed.push(path);
  }
  if (result.kept.length) {
    logger.warn(`Kept ${dir}: it also holds ${result.kept.join(', ')}, which dpgc did not create.`);
    return;
  }
  if (dryRun) logger.dry(`would remove ${dir}`);
  else {
    await rm(`${dir}/${MARKER}`, { force: true });
    await rmdir(dir);
  }
  result.removed.push(dir);
}

function rank(name: string): number {
  const i = STOP_ORDER.indexOf(name);
  return i === -1 ? STOP_ORDER.length : i;
}
