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

/**
 * What a connection needs from the control machine: passwords, and the CA once there is one.
 * `pending`: a rotation's new password (config/secrets.ts), tried first while a rotation is under way.
 */
export type Credentials = Pick<Secrets, 'get'> & Partial<Pick<Secrets, 'clusterCa' | 'pending'>>;

/**
 * The passwords to try, in order. While a rotation of the secret is under
 * way (or was interrupted) the server may hold either: the new one first,
 * then the one in force, so dpgc is never locked out of its own cluster
 * between a rotation's steps.
 */
async function passwords(secrets: Credentials, ep: Endpoint): Promise<string[]> {
  const current = await secrets.get(ep.secret);
  const next = await secrets.pending?.(ep.secret);
  return next && next !== current ? [next, current] : [current];
}

/** PostgreSQL's invalid_password, and PgBouncer's words for a SCRAM or password exchange it refused. */
export function isAuthFailure(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  return (e as { code?: string }).code === '28P01' || /password authentication failed|SASL authentication failed/.test(m);
}

/** node-pg's words when the server answers an SSLRequest with 'N'. */
const NO_TLS = 'The server does not support SSL connections';

/**
 * libpq's `sslmode=prefer` with verification: TLS, the server's certificate
 * verified against the cluster CA and the address dialled (Node checks an IP
 * SAN against an address), whenever the server offers TLS; plaintext only
 * when it offers none (a cluster before sprint 5,
 * PgBouncer's client side). A certificate that does not verify is an error,
 * never a reason to fall back.
 */
export async function connect(secrets: Credentials, ep: Endpoint, opts: ConnectOptions = {}): Promise<pg.Client> {
  const tries = await passwords(secrets, ep);
  for (const [i, password] of tries.entries()) {
    try {
      return await connectWith(secrets, ep, password, opts);
    } catch (e) {
      if (i === tries.length - 1 || !isAuthFailure(e)) throw e;
    }
  }
  throw new Error('unreachable: no password to try');
}

async function connectWith(secrets: Credentials, ep: Endpoint, password: string, opts: ConnectOptions & { authOnly?: boolean }): Promise<pg.Client> {
  if (opts.tls === false) return open(ep, password, opts, undefined);
  const ca = opts.tls?.ca ?? (await secrets.clusterCa?.());
  if (ca === undefined) return open(ep, password, opts, undefined);
  try {
    return await open(ep, password, opts, ca);
  } catch (e) {
    if (opts.tls || !(e instanceof HostError) || !e.message.endsWith(NO_TLS)) throw e;
  }
  try {
    return await open(ep, password, opts, undefined);
  } catch (e) {
    // The server turned TLS on between the two attempts: a reload that applies it was under way (PgBouncer
    // answers its SIGHUP a moment later). Once more, with TLS.
    if (!(e instanceof HostError && Object.values(PLAINTEXT_REFUSED).some((r) => r.test(e.message)))) throw e;
    // Still no TLS: the server offers none and refuses plaintext (TLS turned off on a cluster that requires
    // it, fail closed). Its own refusal says that best.
    return open(ep, password, opts, ca).catch((again: unknown) => {
      throw again instanceof HostError && again.message.endsWith(NO_TLS) ? e : again;
    });
  }
}

/**
 * What each server says when it refuses a plaintext login for being
 * plaintext: PostgreSQL's pg_hba ("… no encryption"), PgBouncer's
 * client_tls_sslmode=require ("SSL required").
 */
export const PLAINTEXT_REFUSED = { postgres: /no encryption/, pgbouncer: /SSL required/ } as const;

/**
 * Whether the server accepts this password, without waiting for a session:
 * resolves once it has sent its SCRAM final message (or, for a server that
 * needs no SCRAM, once the login completes), then leaves. A paused PgBouncer
 * accepts a login, and keeps the client's SCRAM keys for its own logins to
 * PostgreSQL, before it can hand out a session (src/components/rotation.ts).
 * Throws the connection's HostError when the password is refused.
 */
export async function passwordAccepted(secrets: Credentials, ep: Endpoint, password: string, opts: ConnectOptions = {}): Promise<void> {
  const c = await connectWith(secrets, ep, password, { ...opts, authOnly: true });
  abandonClient(c);
}

/** Close without waiting for the server: it may never answer (a paused PgBouncer, a frozen host). */
export function abandonClient(c: pg.Client): void {
  (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  void c.end().catch(() => {});
}

/** Node's codes for a certificate that does not verify (expired, unknown issuer, self-signed, wrong name). */
const CERT_REJECTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID/;

async function open(ep: Endpoint, password: string, opts: ConnectOptions & { authOnly?: boolean }, ca: string | undefined): Promise<pg.Client> {
  const client = new pg.Client({
    host: ep.address,
    port: ep.port,
    database: ep.database,
    user: ep.user,
    password,
    // A refused or reset connection fails at once; this bounds only a host that does not answer, and a
    // loaded machine needs more than 5 s for a SCRAM login (spurious check failures were measured at 5 s).
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'dpgc',
    ...(ca ? { ssl: { ca, rejectUnauthorized: true } } : {}),
    ...(opts.replication ? { replication: 'true' } : {}),
  });
  // An idle client whose server goes away emits 'error'; without a listener that would crash the process.
  client.on('error', () => {});
  const connected = client.connect();
  try {
    if (opts.authOnly) {
      // node-pg checks the server's signature on this message (a server that knows the password sent it).
      const accepted = new Promise<void>((resolve) => (client as unknown as { connection: { once(ev: string, f: () => void): void } }).connection.once('authenticationSASLFinal', () => setImmediate(resolve)));
      connected.catch(() => {});
      await Promise.race([connected.then(() => undefined), accepted]);
    } else {
      await connected;
    }
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
