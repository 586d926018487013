import type { Lease } from 'etcd3';
import { readFile } from 'node:fs/promises';
import type { Inventory } from './config/schema.js';
import { caPathsFor, controlClientFiles } from './components/ca.js';
import { etcdHosts, liveClientEndpoints } from './components/etcd.js';
import { LockedError } from './errors.js';
import { tcpAnswer } from './hosts/tcp.js';
import { describeHolder, staleReason, type LockHolder } from './lock.js';
import type { Logger } from './output/log.js';

/**
 * The cluster's lock across machines. `<inventory>.lock` (src/lock.ts)
 * excludes runs on one control machine; two operators with their own copies
 * of the inventory on two machines only meet in the cluster itself. Once etcd
 * runs (sprint 2 on), a run that changes hosts also holds the key
 * /dpgc/<cluster>/run-lock, created only if absent and bound to a lease it
 * keeps alive: a run that dies releases it within LEASE_TTL_S, so a stale
 * holder needs no detection. Before etcd exists (or when no member answers)
 * the local lock is all there is, and the run says so with --verbose.
 *
 * The only module that imports etcd3, lazily: commands that never reach a
 * cluster with etcd never load gRPC.
 */
const LEASE_TTL_S = 15;

export interface EtcdRunLock {
  key: string;
  release(): Promise<void>;
}

export function runLockKey(cluster: string): string {
  return `/dpgc/${cluster}/run-lock`;
}

type LockInv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'file'>;

/**
 * The lock for the whole run. A lease can be lost under a run that is still
 * going: sprint 5 moves etcd to TLS (the client that took it speaks
 * plaintext), or etcd loses its quorum for longer than the lease. It is then
 * taken again, over whatever etcd serves now; only when that fails does the
 * run warn that another could start.
 */
export async function acquireEtcdRunLock(inv: LockInv, me: LockHolder, logger: Logger): Promise<EtcdRunLock | undefined> {
  let released = false;
  let current: EtcdRunLock | undefined;
  // A retake under way when the run ends is waited for and released too: a lock taken again after the
  // run's release would outlive the run by its lease and refuse the next run (seen in CI).
  let retaking: Promise<void> = Promise.resolve();
  const lost = (e: Error): void => {
    if (released) return;
    const was = current;
    retaking = takeOnce(inv, me, logger, lost, true)
      .then((again) => {
        if (!again) throw new Error('etcd does not answer');
        current = again;
        logger.debug(`took ${again.key} in etcd again after losing it (${e.message.split('\n')[0]})`);
      })
      .catch((err: unknown) => logger.warn(`lost the cluster's lock in etcd (${runLockKey(inv.cluster)}): ${e.message.split('\n')[0]}; taking it again failed (${(err as Error).message.split('\n')[0]}); a run from another machine could start now`))
      .finally(() => void was?.release().catch(() => undefined));
  };
  current = await takeOnce(inv, me, logger, lost, false);
  if (!current) return undefined;
  return {
    key: current.key,
    release: async () => {
      released = true;
      await retaking;
      await current?.release();
    },
  };
}

async function takeOnce(inv: LockInv, me: LockHolder, logger: Logger, onLost: (e: Error) => void, again: boolean): Promise<EtcdRunLock | undefined> {
  const members = etcdHosts(inv).map((h) => ({ host: h.address, port: inv.ports.etcd_client }));
  if (!members.length) return undefined;
  // Before sprint 2 nothing listens: a TCP probe says so in a millisecond, without loading gRPC or retrying.
  if (!(await anyAccepts(members))) {
    logger.debug(`no etcd member accepts connections (${members.map((m) => `${m.host}:${m.port}`).join(', ')}); the lock is ${inv.cluster}'s on this machine only`);
    return undefined;
  }
  // Over TLS (sprint 5 on), with dpgc's client certificate beside the CA: without one the lock is this machine's only.
  // etcd3 takes one scheme for all hosts: mid-switch, the members serving TLS.
  const live = await liveClientEndpoints(inv);
  const tls = live.some((u) => u.startsWith('https:'));
  let credentials: { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer } | undefined;
  if (tls) {
    const f = controlClientFiles(caPathsFor(inv.file).dir);
    const [ca, cert, key] = await Promise.all([f.ca, f.cert, f.key].map((p) => readFile(p).catch(() => undefined)));
    if (!ca || !cert || !key) {
      logger.debug(`etcd serves TLS and this machine has no client certificate for it (${f.cert}); the lock is ${inv.cluster}'s on this machine only`);
      return undefined;
    }
    credentials = { rootCertificate: ca, certChain: cert, privateKey: key };
  }
  const { Etcd3 } = await import('etcd3');
  const hosts = tls ? live.filter((u) => u.startsWith('https:')) : live;
  const client = new Etcd3({
    hosts,
    ...(credentials ? { credentials } : {}),
    dialTimeout: 2000,
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + 3000 }),
  });
  const key = runLockKey(inv.cluster);
  let acquired = false;
  const started = Date.now();
  let lease: Lease | undefined;
  let leaseId = '';
  // The client picks a member per call; with one member down a grant can land on it a few times
  // before its circuit breaker opens, so a few attempts (within about 4 s) before giving up.
  for (let attempt = 1; !lease; attempt++) {
    const l = client.lease(LEASE_TTL_S);
    // Before the grant this is just "etcd is not there"; after it, another operator's run could start.
    l.on('lost', (e) => {
      if (acquired) {
        acquired = false;
        onLost(e);
      }
    });
    try {
      leaseId = await l.grant();
      lease = l;
    } catch (e) {
      if (attempt < 5 && Date.now() - started < 4000) continue;
      client.close();
      logger.debug(`etcd (${hosts.join(', ')}) does not answer (${(e as Error).message.split('\n')[0]}); the lock is ${inv.cluster}'s on this machine only`);
      return undefined;
    }
  }
  const held = lease;
  const close = async () => {
    acquired = false;
    await held.revoke().catch(() => undefined);
    client.close();
  };
  try {
    // Taken again: the key may still be ours, bound to the lease that ended; it names this run, so it goes.
    if (again) await client.if(key, 'Value', '==', JSON.stringify(me)).then(client.delete().key(key)).commit();
    const txn = () => client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(me)).lease(leaseId)).else(client.get(key)).commit();
    // Retried like the grant. A try that applied but whose answer was lost finds our own holder there.
    let r = await txn().catch(() => txn()).catch(() => txn());
    let other = r.succeeded ? JSON.stringify(me) : r.responses[0]?.response_range?.kvs?.[0]?.value?.toString();
    // A holder on this machine whose process is gone: its lease outlives it by up to LEASE_TTL_S (a release
    // that could not reach etcd, a SIGKILL), but nothing runs. Removed only if it is still that holder.
    const stale = other !== undefined && other !== JSON.stringify(me) ? staleHolder(other) : undefined;
    if (stale) {
      logger.info(`the cluster's lock in etcd (${key}) was held by ${stale}; taking it over`);
      await client.if(key, 'Value', '==', other!).then(client.delete().key(key)).commit();
      r = await txn();
      other = r.succeeded ? JSON.stringify(me) : r.responses[0]?.response_range?.kvs?.[0]?.value?.toString();
    }
    if (other !== JSON.stringify(me)) {
      throw new LockedError(`another dpgc run is changing cluster ${inv.cluster}: ${holderText(other)} (lock ${key} in etcd)`, {
        hint: `Wait for it to finish, then run again. A run that died releases it within ${LEASE_TTL_S} s.`,
      });
    }
  } catch (e) {
    await close();
    if (e instanceof LockedError) throw e;
    logger.debug(`could not take ${key} in etcd (${(e as Error).message.split('\n')[0]}); the lock is this machine's only`);
    return undefined;
  }
  acquired = true;
  return { key, release: close };
}

/** `describeHolder` and why it cannot be running, when the holder is a dpgc run on this machine that has ended. */
function staleHolder(json: string): string | undefined {
  try {
    const h = JSON.parse(json) as LockHolder;
    if (typeof h.pid !== 'number' || typeof h.host !== 'string') return undefined;
    const why = staleReason(h);
    return why ? `${describeHolder(h)}, which has ended (${why})` : undefined;
  } catch {
    return undefined;
  }
}

function holderText(json: string | undefined): string {
  try {
    const h = JSON.parse(json ?? '') as LockHolder;
    if (typeof h.pid === 'number' && typeof h.host === 'string') return describeHolder(h);
  } catch {
    // Written by something else.
  }
  return `a holder that does not say who it is (${JSON.stringify(json ?? '')})`;
}

/**
 * Whether any endpoint accepts a TCP connection. A closed port answers at once (refused), which is the
 * "before sprint 2" case this probe exists for; a timeout is not an answer, so it is long: on a loaded
 * control machine a 1 s timeout fired before the connect was seen, dpgc concluded "no etcd", and
 * re-rendered Prometheus without the cluster's targets (and would have decided routing the same way).
 */
const PROBE_TIMEOUT_MS = 5000;

export function anyAccepts(endpoints: { host: string; port: number }[]): Promise<boolean> {
  return new Promise((resolve) => {
    let pending = endpoints.length;
    if (!pending) resolve(false);
    for (const e of endpoints) {
      void tcpAnswer(e.host, e.port, PROBE_TIMEOUT_MS).then((a) => {
        if (a === 'accepted') resolve(true);
        else if (--pending === 0) resolve(false);
      });
    }
  });
}
