import { describe, expect, it } from 'vitest';
import { extensionsFor, requestProblem } from '../../src/components/ca.js';
import { desiredDynamicConfig } from '../../src/components/patroni.js';
import { clusterTlsParameters, pgCertRequest, tlsParameters } from '../../src/components/postgres-tls.js';
import { hostPaths } from '../../src/config/paths.js';

const inv = { cluster: 'c', postgres: { version: 15 } } as Parameters<typeof hostPaths>[0];

describe("PostgreSQL's TLS parameters", () => {
  it('name each host’s own files with one relative path, on a real host and under a lab root alike', () => {
    const real = tlsParameters(hostPaths(inv, { root: '', name: 'db1' }));
    const lab = tlsParameters(hostPaths(inv, { root: '/tmp/dpgc-lab/db2', name: 'db2' }));
    expect(lab).toEqual(real);
    expect(real['ssl_cert_file']).toBe('../../../../../etc/dpgc/tls/postgres.crt');
    expect(real['ssl_key_file']).toBe('../../../../../etc/dpgc/tls/postgres.key');
    expect(real).toMatchObject({ ssl: 'on', ssl_min_protocol_version: 'TLSv1.2' });
    expect(clusterTlsParameters(inv)).toEqual(real);
  });

  it('enter the dynamic configuration only when asked, and win over postgres.settings', () => {
    const base = { timings: { ttl: 30, loop_wait: 10, retry_timeout: 10 }, postgres: { version: 15, settings: {}, synchronous_node_count: 1, synchronous_commit: 'on', max_connections: 100 } } as unknown as Parameters<typeof desiredDynamicConfig>[0];
    expect(desiredDynamicConfig(base).postgresql.parameters['ssl']).toBeUndefined();
    const p = desiredDynamicConfig(base, { sized: { ssl: 'off' }, tls: true }).postgresql.parameters;
    expect(p['ssl']).toBe('on');
    expect(p['ssl_cert_file']).toBe('../../../../../etc/dpgc/tls/postgres.crt');
  });

  it('ask for a server certificate naming the host and its address, and the HAProxy hosts that route to it', () => {
    const hosts = [
      { name: 'ctl', address: '127.0.0.10', roles: ['haproxy', 'etcd'] },
      { name: 'db1', address: '127.0.0.11', roles: ['postgres'] },
      { name: 'db2', address: '127.0.0.12', roles: ['postgres', 'haproxy'] },
    ] as unknown as Parameters<typeof pgCertRequest>[0]['hosts'];
    const req = pgCertRequest({ hosts }, { name: 'db1', address: '127.0.0.11' });
    expect(requestProblem(req)).toBeUndefined();
    expect(extensionsFor(req)).toContain('extendedKeyUsage = serverAuth\n');
    expect(extensionsFor(req)).toContain('subjectAltName = DNS:ctl, DNS:db1, DNS:db2, IP:127.0.0.10, IP:127.0.0.11, IP:127.0.0.12');
    // A member that runs HAProxy itself names itself once.
    expect(pgCertRequest({ hosts }, { name: 'db2', address: '127.0.0.12' }).ips).toEqual(['127.0.0.12', '127.0.0.10']);
  });
});
