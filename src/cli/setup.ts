import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { loadInventory } from '../config/load.js';
import { Secrets, secretsPathFor } from '../config/secrets.js';
import type { RunContext } from '../context.js';
import { HostPool } from '../hosts/pool.js';
import { shellJoin } from '../hosts/quote.js';
import { thisRun, withRunLock } from '../lock.js';
import { createLogger } from '../output/log.js';
import { redact } from '../output/redact.js';
import { statePathFor } from '../state.js';
import { globals } from './globals.js';
import { UsageError } from '../errors.js';

/**
 * Load inventory, secrets and hosts for a command; always closes connections.
 * `changesHosts`: the command holds the cluster's lock for its whole run (and,
 * once etcd runs, its lock in etcd), and on a lab the lab's directories exist
 * and carry dpgc's marker first.
 * `createsSecrets`: only commands that set hosts up (`sprint`, `up`) may
 * create or extend the secrets file; every other command only reads it.
 * `observeOnly`: the run is a dry run whatever the flags say (`plan`).
 */
export async function withContext<T>(cmd: Command, fn: (ctx: RunContext) => Promise<T>, o: { changesHosts?: boolean; createsSecrets?: boolean; observeOnly?: boolean } = {}): Promise<T> {
  const run = async (): Promise<T> => {
    // `observeOnly` (dpgc plan): as under --dry-run, hosts and secrets are only read.
    const options = o.observeOnly ? { ...globals(cmd), dryRun: true } : globals(cmd);
    const logger = createLogger({ verbose: options.verbose });
    const inventory = await loadInventory(options.config);
    const state = statePathFor(inventory.file);
    const { caPathsFor, checkCaFiles } = await import('../components/ca.js');
    const secrets = new Secrets(secretsPathFor(inventory.file), {
      dryRun: options.dryRun,
      caCert: caPathsFor(inventory.file).cert,
      mayCreate: o.createsSecrets ?? false,
      command: `dpgc ${commandPath(cmd)}`,
      ...(existsSync(state) ? { clusterExists: { because: `the cluster was already set up (${state} records its sprints)` } } : {}),
    });
    await secrets.check();
    if (o.createsSecrets && !options.dryRun) await refuseDuringRotation(secrets);
    await checkCaFiles(caPathsFor(inventory.file), inventory.cluster);
    // The operator's own host certificates, for the commands that may install them; the read-only ones
    // (status, verify, readiness) still run, and report a certificate that ends too soon.
    if (o.changesHosts || o.observeOnly) await (await import('../components/host-certs.js')).checkOperatorCerts(inventory, new Date(), (m) => logger.warn(m));
    const changes = o.changesHosts === true && !options.dryRun;
    // Before anything changes: a run from another machine may hold the cluster (src/lock-etcd.ts).
    const etcdLock = changes ? await (await import('../lock-etcd.js')).acquireEtcdRunLock(inventory, thisRun(commandLine()), logger) : undefined;
    try {
      if (changes && inventory.lab) {
        const { claimLabDirs } = await import('../lab/lab.js');
        await claimLabDirs(inventory);
      }
      const pool = new HostPool(inventory, { dryRun: options.dryRun, logger, acceptNewHostKeys: options.acceptNewHostKeys });
      try {
        return await fn({ inventory, secrets, pool, logger, options });
      } finally {
        await pool.close();
      }
    } finally {
      await etcdLock?.release();
    }
  };
  return o.changesHosts ? withHostsLock(cmd, run) : run();
}

/**
 * A sprint renders every credential from the secrets file's values in force:
 * run between a rotation's steps, it would put the old password back beside
 * the new one (PgBouncer then holds SCRAM keys that match neither). The
 * rotation is completed first.
 */
async function refuseDuringRotation(secrets: Secrets): Promise<void> {
  const pending = await secrets.pendingNames();
  if (!pending.length) return;
  throw new UsageError(`a password rotation was begun and not completed (${pending.join(', ')} pending in ${secrets.file})`, {
    hint: `Run \`dpgc rotate --role ${pending[0]}\` first: it completes every rotation left pending, with the value recorded then.`,
  });
}

/**
 * The cluster's lock (`<inventory>.lock`, src/lock.ts) around `fn`. A
 * --dry-run changes nothing, so it neither takes nor waits for the lock.
 */
export async function withHostsLock<T>(cmd: Command, fn: () => Promise<T>, o: { createsInventory?: boolean } = {}): Promise<T> {
  const g = globals(cmd);
  if (g.dryRun) return fn();
  const file = resolve(g.config);
  if (!existsSync(dirname(file))) {
    // No inventory can be there: the command fails on loading it, having changed nothing, unless it writes one.
    if (!o.createsInventory) return fn();
    await mkdir(dirname(file), { recursive: true });
  }
  return withRunLock(file, commandLine(), createLogger({ verbose: g.verbose }), fn);
}

/** This run's command line, as a lock names it for whoever is refused. */
function commandLine(): string {
  return redact(`dpgc ${shellJoin(process.argv.slice(2))}`);
}

/** `lab up`, `verify`: the command as typed, without the program name. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The one JSON document of a --json run. */
export { emitJson } from '../output/json.js';
