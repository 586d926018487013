import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/**
 * dpgc's HTTP client for the metrics plane (the exporters, Prometheus,
 * Alertmanager): plaintext before sprint 5; afterwards TLS verified against
 * the cluster CA alone (never the system's roots) and the address dialled,
 * with basic auth. node:https rather than fetch: fetch takes no CA of its own
 * without undici's Agent, which Node does not expose.
 */
export interface WebTarget {
  /** `http://address:port` or `https://address:port`. */
  base: string;
  /** PEM: the only CA trusted for this target. */
  ca?: string;
  auth?: { username: string; password: string };
}

export interface WebResponse {
  status: number;
  body: string;
  /** The end of the certificate the server presented, over TLS. */
  peerValidTo?: Date;
}

export interface WebGetOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** false: leave the credentials out, to see what an anonymous client gets. */
  withAuth?: boolean;
}

/** A target at `address:port`: https with the CA and credentials when TLS is on, else plain http. */
export function webTarget(hostPort: string, tls: { ca: string; username: string; password: string } | undefined): WebTarget {
  return tls ? { base: `https://${hostPort}`, ca: tls.ca, auth: { username: tls.username, password: tls.password } } : { base: `http://${hostPort}` };
}

/** GET `path` on a target; rejects only when no HTTP answer came (refused, reset, TLS failure, timeout). */
export function webGet(t: WebTarget, path: string, o: WebGetOptions = {}): Promise<WebResponse> {
  return httpGet(`${t.base}${path}`, { ...o, ...(t.ca ? { ca: t.ca } : {}), ...(t.auth && o.withAuth !== false ? { auth: t.auth } : {}) });
}

/** GET a whole URL (a scrape URL Prometheus reports): TLS options apply when it is https. */
export function httpGet(url: string, o: WebGetOptions & { ca?: string; auth?: { username: string; password: string } } = {}): Promise<WebResponse> {
  return webRequest(url, o);
}

export interface WebRequestOptions extends WebGetOptions {
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  ca?: string;
  auth?: { username: string; password: string };
  /** A client certificate and its key (PEM), for a server that requires one (etcd from sprint 5 on). */
  clientCert?: { cert: string; key: string };
}

/**
 * Why a request got no HTTP answer, so a caller can tell a server speaking
 * the other protocol from one that is down: `not-tls` (https to a plaintext
 * server), `closed` (the server closed without answering: plaintext to a TLS
 * server), `timeout`, or `other` (refused, a certificate that does not verify…).
 */
export class WebError extends Error {
  constructor(
    message: string,
    readonly kind: 'not-tls' | 'closed' | 'timeout' | 'other',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** One request; rejects with a WebError only when no HTTP answer came. */
export function webRequest(url: string, o: WebRequestOptions = {}): Promise<WebResponse> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  const headers: Record<string, string> = {};
  if (o.auth) headers['authorization'] = `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`).toString('base64')}`;
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const signal = AbortSignal.any([AbortSignal.timeout(o.timeoutMs ?? 10_000), ...(o.signal ? [o.signal] : [])]);
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      const cert = secure ? (res.socket as TLSSocket).getPeerCertificate?.() : undefined;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(cert?.valid_to ? { peerValidTo: new Date(cert.valid_to) } : {}) }),
      );
    };
    // agent: false: one connection per request, nothing pooled that would keep the process alive.
    const opts = { method: o.method ?? 'GET', headers, signal, agent: false as const };
    const req = secure ? httpsRequest(u, { ...opts, ...(o.ca ? { ca: o.ca } : {}), ...(o.clientCert ?? {}) }, onResponse) : httpRequest(u, opts, onResponse);
    req.on('error', (e: NodeJS.ErrnoException) => reject(webError(e)));
    req.end(body);
  });
}

/**
 * What a server speaks on a port, from a TLS handshake that does not judge
 * the certificate (a wrong certificate is still TLS): `tls`, `plain` (it
 * answered the handshake with something else, or closed it), or undefined
 * when nothing answers (refused, or no answer in time).
 */
export const tlsProbe = (address: string, port: number, timeoutMs = 3000): Promise<'tls' | 'plain' | undefined> => handshake(address, port, timeoutMs).then((h) => h.speaks);

/** The SHA-256 fingerprint of the certificate a TLS server presents now (undefined: no TLS answer). */
export const servedFingerprint = (address: string, port: number, timeoutMs = 3000): Promise<string | undefined> => handshake(address, port, timeoutMs).then((h) => h.fingerprint);

function handshake(address: string, port: number, timeoutMs: number): Promise<{ speaks: 'tls' | 'plain' | undefined; fingerprint?: string }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: address, port, rejectUnauthorized: false, timeout: timeoutMs });
    const done = (r: { speaks: 'tls' | 'plain' | undefined; fingerprint?: string }) => {
      s.destroy();
      resolve(r);
    };
    s.once('secureConnect', () => done({ speaks: 'tls', fingerprint: s.getPeerCertificate().fingerprint256 }));
    s.once('timeout', () => done({ speaks: undefined }));
    s.once('error', (e: NodeJS.ErrnoException) => {
      const k = webError(e).kind;
      done({ speaks: k === 'not-tls' || k === 'closed' ? 'plain' : undefined });
    });
  });
}

function webError(e: NodeJS.ErrnoException): WebError {
  const msg = describeError(e);
  const kind = e.name === 'AbortError' || e.name === 'TimeoutError' ? 'timeout' : msg.startsWith('it does not speak TLS') ? 'not-tls' : msg.startsWith('the connection was closed') ? 'closed' : 'other';
  return new WebError(msg, kind, { cause: e });
}

/** What went wrong, in the words an operator looks up: the TLS stack's reason, or the socket's code. */
function describeError(e: NodeJS.ErrnoException): string {
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'no answer in time';
  const notTls = /wrong version number|packet length too long|unknown protocol|http request/i.exec(e.message);
  if (notTls) return `it does not speak TLS (${notTls[0].toLowerCase()})`;
  // A TLS server's alert read as HTTP (HPE_…) is no answer either.
  if (e.code === 'ECONNRESET' || e.message === 'socket hang up' || e.code?.startsWith('HPE_')) return 'the connection was closed without an answer';
  return e.code && !e.message.includes(e.code) ? `${e.message} (${e.code})` : e.message;
}
