import { connect } from 'node:net';

/**
 * One TCP connection attempt from the machine dpgc runs on, closed at once:
 * `accepted`, `refused` (a reset: nothing listens, or a firewall rejects),
 * `timeout` (nothing answered: dropped, or a host that is down), or
 * `error` (anything else, such as no route).
 */
export type TcpAnswer = 'accepted' | 'refused' | 'timeout' | 'error';

export function tcpAnswer(host: string, port: number, timeoutMs: number): Promise<TcpAnswer> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: timeoutMs });
    let settled = false;
    const settle = (a: TcpAnswer) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(a);
    };
    sock.once('connect', () => settle('accepted'));
    sock.once('timeout', () => settle('timeout'));
    sock.once('error', (e: NodeJS.ErrnoException) => settle(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  });
}
