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
  /**
   * TLS against this CA, required: a server without TLS is an error (the
   * check that proves TLS). `false`: plaintext only (the check that proves a
   * server refuses it). Without it, the cluster CA (Secrets.clusterCa) is
   * used when there is one, and a server that offers no TLS is reached in
   * plaintext.
   */
  tls?: { ca: string } | false;
  /** A physical replication connection (`replication=true`), as a standby's WAL receiver opens. */
  replication?: boolean;
}

/** What a connection needs from the control machine: passwords, and the CA once there is one. */
export type Credentials = Pick<Secrets, 'get'> & Partial<Pick<Secrets, 'clusterCa'>>;

/** node-pg's words when the server answers an SSLRequest with 'N'. */
const NO_TLS = 'The server does not support SSL connections';

/**
 * libpq's `sslmode=prefer` with verification: TLS, the server's certificate
 * verified against the cluster CA and the address dialled (Node checks an IP
 * SAN against an address), whenever the server offers TLS; plaintext only
 * when it offers none (a cluster before sprint 5, the PITR scratch instance,
 * PgBouncer's client side). A certificate that does not verify is an error,
 * never a reason to fall back.
 */
export async function connect(secrets: Credentials, ep: Endpoint, opts: ConnectOptions = {}): Promise<pg.Client> {
  if (opts.tls === false) return open(secrets, ep, opts, undefined);
  const ca = opts.tls?.ca ?? (await secrets.clusterCa?.());
  if (ca === undefined) return open(secrets, ep, opts, undefined);
  try {
    return await open(secrets, ep, opts, ca);
  } catch (e) {
    if (opts.tls || !(e instanceof HostError) || !e.message.endsWith(NO_TLS)) throw e;
    return open(secrets, ep, opts, undefined);
  }
}

/** Node's codes for a certificate that does not verify (expired, unknown issuer, self-signed, wrong name). */
const CERT_REJECTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID/;

async function open(secrets: Credentials, ep: Endpoint, opts: ConnectOptions, ca: string | undefined): Promise<pg.Client> {
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
    ...(ca ? { ssl: { ca, rejectUnauthorized: true } } : {}),
    ...(opts.replication ? { replication: 'true' } : {}),
  });
  // An idle client whose server goes away emits 'error'; without a listener that would crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    const code = (e as { code?: string }).code ?? '';
    const refusedByHba = code === '28000' && /pg_hba/.test((e as Error).message);
    // PostgreSQL's words for a plaintext login that a `hostnossl … reject` rule (or no hostssl rule) refused.
    const tlsRequired = refusedByHba && /no encryption/.test((e as Error).message);
    const certRejected = ca !== undefined && CERT_REJECTED.test(code);
    throw new HostError(
      `${ep.name}: cannot connect to ${ep.user}@${ep.address}:${ep.port}/${ep.database}: ${(e as Error).message}`,
      // dpgc connects from where it runs, like an application: that address must be allowed too.
      tlsRequired && ca === undefined && opts.tls !== false
        ? { hint: 'The cluster takes TCP logins over TLS only (sprint 5), and this machine has no cluster CA certificate to verify it with: restore the CA directory beside the inventory (`<inventory>.ca/`) from the machine that set the cluster up.' }
        : refusedByHba && !tlsRequired
        ? { hint: 'Add the network of the machine dpgc runs on to network.allowed_cidrs in the inventory, then run `dpgc up` to update pg_hba on every node.' }
        : certRejected
          ? { hint: `The server's certificate does not verify against the cluster's CA for ${ep.address}: \`dpgc sprint 5\` issues each member's certificate again (add --force if an earlier sprint's check fails on this same error).` }
          : undefined,
    );
  }
  return client;
}

export async function withClient<T>(secrets: Credentials, ep: Endpoint, fn: (c: pg.Client) => Promise<T>, opts?: ConnectOptions): Promise<T> {
  const c = await connect(secrets, ep, opts);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export { pg };
