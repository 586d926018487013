import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';

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
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  const headers: Record<string, string> = {};
  if (o.auth) headers['authorization'] = `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`).toString('base64')}`;
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
    const opts = { method: 'GET', headers, signal, agent: false as const };
    const req = secure ? httpsRequest(u, { ...opts, ...(o.ca ? { ca: o.ca } : {}) }, onResponse) : httpRequest(u, opts, onResponse);
    req.on('error', (e: NodeJS.ErrnoException) => reject(new Error(describeError(e), { cause: e })));
    req.end();
  });
}

/** What went wrong, in the words an operator looks up: the TLS stack's reason, or the socket's code. */
function describeError(e: NodeJS.ErrnoException): string {
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'no answer in time';
  const notTls = /wrong version number|packet length too long|unknown protocol|http request/i.exec(e.message);
  if (notTls) return `it does not speak TLS (${notTls[0].toLowerCase()})`;
  if (e.code === 'ECONNRESET' || e.message === 'socket hang up') return 'the connection was closed without an answer';
  return e.code && !e.message.includes(e.code) ? `${e.message} (${e.code})` : e.message;
}
