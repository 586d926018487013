import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { connect } from '../db/client.js';
import { DATABASES, superuserOn } from '../components/endpoints.js';
import { abandon, DRILL_TABLE } from './load.js';

/**
 * After a frozen primary wakes up, a new leader already exists. Does the old
 * one still acknowledge a write sent to it directly (not through HAProxy,
 * which may not route there any more)? It must not: with synchronous
 * replication its commit waits for a standby that now follows someone else,
 * and Patroni demotes it on its first loop. The insert runs with the
 * server's defaults (no client-side synchronous_commit override) and is
 * abandoned, never cancelled, if it hangs: a cancelled wait for a
 * synchronous standby reports success for a commit that is only local.
 */
export interface ProbeResult {
  accepted: boolean;
  detail: string;
  tookMs: number;
}

export async function probeOldPrimary(inv: Pick<Inventory, 'hosts' | 'ports'>, secrets: Pick<Secrets, 'get'>, victim: string, run: string, timeoutMs = 10_000): Promise<ProbeResult> {
  const h = inv.hosts.find((x) => x.name === victim)!;
  const started = Date.now();
  const took = () => Date.now() - started;
  let client;
  try {
    client = await connect(secrets, superuserOn(inv, h, DATABASES.project.name), { timeoutMs: 3000, applicationName: 'dpgc-drill-probe' });
  } catch (e) {
    return { accepted: false, detail: `refused the connection (${(e as Error).message.split('\n')[0]})`, tookMs: took() };
  }
  try {
    const insert = client.query(`INSERT INTO ${DRILL_TABLE} (run, writer, seq, client_at) VALUES ($1, -1, 1, now())`, [run]).then(
      () => ({ accepted: true, detail: 'ACKNOWLEDGED a direct write (split brain)' }),
      (e: Error) => ({ accepted: false, detail: `refused the write: ${e.message.split('\n')[0]}` }),
    );
    const timeout = new Promise<{ accepted: boolean; detail: string }>((r) => setTimeout(() => r({ accepted: false, detail: `did not acknowledge a direct write within ${timeoutMs / 1000} s (abandoned, not cancelled)` }), timeoutMs));
    const r = await Promise.race([insert, timeout]);
    return { ...r, tookMs: took() };
  } finally {
    abandon(client);
  }
}
