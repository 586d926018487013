import pg from 'pg';
import type { SecretName, Secrets } from '../config/secrets.js';
import { HostError } from '../errors.js';

/**
 * The only module that imports `pg`. Connections are made from the control
 * machine over TCP with SCRAM, exactly as applications connect, so a check
 * that passes proves the path an application uses.
 */
export interface Endpoint {
  /** Host name for messages. */
  name: string;
  address: string;
  port: number;
  database: string;
  user: string;
  /** Secret holding the user's password. */
  secret: SecretName;
}

export type Client = pg.Client;

export interface ConnectOptions {
  timeoutMs?: number;
  applicationName?: string;
  /** TLS, the server's certificate verified against this CA and the address dialled (libpq's verify-full). */
  tls?: { ca: string };
}

export async function connect(secrets: Pick<Secrets, 'get'>, ep: Endpoint, opts: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    host: ep.address,
    port: ep.port,
    database: ep.database,
    user: ep.user,
    password: await secrets.get(ep.secret),
    // A refused or reset connection fails at once; this bounds only a host that does not answer, and a
    // loaded machine needs more than 5 s for a SCRAM login (spurious check failures were measured at 5 s).
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'dpgc',
    // Node checks the certificate's SANs against the address dialled (an IP SAN for an address).
    ...(opts.tls ? { ssl: { ca: opts.tls.ca, rejectUnauthorized: true } } : {}),
  });
  // An idle client whose server goes away emits 'error'; without a listener that would crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    const refusedByHba = (e as { code?: string }).code === '28000' && /pg_hba/.test((e as Error).message);
    throw new HostError(
      `${ep.name}: cannot connect to ${ep.user}@${ep.address}:${ep.port}/${ep.database}: ${(e as Error).message}`,
      // dpgc connects from where it runs, like an application: that address must be allowed too.
      refusedByHba ? { hint: 'Add the network of the machine dpgc runs on to network.allowed_cidrs in the inventory, then run `dpgc up` to update pg_hba on every node.' } : undefined,
    );
  }
  return client;
}

export async function withClient<T>(secrets: Pick<Secrets, 'get'>, ep: Endpoint, fn: (c: pg.Client) => Promise<T>, opts?: ConnectOptions): Promise<T> {
  const c = await connect(secrets, ep, opts);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export { pg };
