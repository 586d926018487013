import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { etcdCertRequest } from '../../src/components/etcd-tls.js';
import { endpointAddress, etcdTlsFiles, renderEtcdEnv } from '../../src/components/etcd.js';
import { ETCD_CLIENT_CERT, renderPatroniConfig, type PatroniCredentials } from '../../src/components/patroni.js';
import { prometheusClientCert, renderPrometheusYml, RULE_FILES, ruleFileText } from '../../src/components/prometheus.js';
import { hostPaths } from '../../src/config/paths.js';
import { parseShEnv } from '../helpers/config-parsers.js';
import { labInv } from '../helpers/lab-inventory.js';

const inv = labInv();
const host = (name: string) => inv.hosts.find((h) => h.name === name)!;
const creds: PatroniCredentials = {
  rest: { username: 'patroni', password: 'r' },
  superuser: { username: 'postgres', password: 's' },
  replication: { username: 'replicator', password: 'p' },
  rewind: { username: 'rewind_user', password: 'w' },
};

describe("etcd's environment by mode", () => {
  const paths = hostPaths(inv, host('db1'));
  const env = (mode: 'plain' | 'files' | 'tls') => parseShEnv(renderEtcdEnv(inv, host('db1'), paths, mode));
  const f = etcdTlsFiles(paths);

  it('plain: no TLS setting; files: the TLS files named, the listeners still plaintext; tls: https only, certificates required both ways', () => {
    expect(Object.keys(env('plain')).filter((k) => /CERT|KEY|CA_FILE/.test(k))).toEqual([]);
    const files = env('files');
    expect(files).toMatchObject({ ETCD_LISTEN_CLIENT_URLS: 'http://127.0.30.11:2379', ETCD_LISTEN_PEER_URLS: 'http://127.0.30.11:2380', ETCD_PEER_CERT_FILE: f.cert, ETCD_PEER_TRUSTED_CA_FILE: f.ca });
    const tls = env('tls');
    expect(tls).toMatchObject({
      ETCD_LISTEN_CLIENT_URLS: 'https://127.0.30.11:2379',
      ETCD_ADVERTISE_CLIENT_URLS: 'https://127.0.30.11:2379',
      ETCD_LISTEN_PEER_URLS: 'https://127.0.30.11:2380',
      ETCD_INITIAL_ADVERTISE_PEER_URLS: 'https://127.0.30.11:2380',
      ETCD_CERT_FILE: f.cert,
      ETCD_KEY_FILE: f.key,
      ETCD_TRUSTED_CA_FILE: f.ca,
      ETCD_CLIENT_CERT_AUTH: 'true',
      ETCD_PEER_CLIENT_CERT_AUTH: 'true',
    });
    expect(endpointAddress(tls.ETCD_LISTEN_CLIENT_URLS!)).toBe('127.0.30.11:2379');
  });

  it("a member's certificate names it and its address; on a loopback address also 127.0.0.1, where its peers' connections come from", () => {
    expect(etcdCertRequest(host('db1'))).toEqual({ name: 'etcd', cn: 'db1', dns: ['db1'], ips: ['127.0.30.11', '127.0.0.1'], usage: ['server', 'client'] });
    expect(etcdCertRequest({ name: 'db1', address: '10.0.1.11' }).ips).toEqual(['10.0.1.11']);
  });
});

describe("Patroni's etcd3 section", () => {
  it('plaintext until etcdTls, then https with the CA and its own client certificate', () => {
    const h = host('db2');
    const paths = hostPaths(inv, h);
    const plain = parse(renderPatroniConfig(inv, h, paths, creds, { requireTls: true })) as { etcd3: Record<string, unknown> };
    expect(plain.etcd3).toEqual({ protocol: 'http', hosts: ['127.0.30.11:2379', '127.0.30.12:2379', '127.0.30.13:2379'] });
    const tls = parse(renderPatroniConfig(inv, h, paths, creds, { requireTls: true, etcdTls: true })) as { etcd3: Record<string, unknown> };
    expect(tls.etcd3).toEqual({
      protocol: 'https',
      cacert: `${paths.tlsDir}/ca.crt`,
      cert: `${paths.tlsDir}/${ETCD_CLIENT_CERT}.crt`,
      key: `${paths.tlsDir}/${ETCD_CLIENT_CERT}.key`,
      hosts: ['127.0.30.11:2379', '127.0.30.12:2379', '127.0.30.13:2379'],
    });
  });
});

describe("Prometheus's etcd job with a client certificate", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dpgc-etcd-tls-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('only the etcd job presents it; promtool check config accepts the file', async () => {
    const paths = { ...hostPaths(inv, host('ctl')), prometheusDir: dir, tlsDir: join(dir, 'tls') };
    await mkdir(join(dir, 'rules'), { recursive: true });
    await mkdir(paths.tlsDir, { recursive: true });
    for (const f of RULE_FILES) await writeFile(join(dir, 'rules', f), ruleFileText(f));
    const c = prometheusClientCert(paths);
    for (const f of [c.caFile, c.certFile, c.keyFile]) await writeFile(f, 'unused by promtool\n');
    const text = renderPrometheusYml(inv, paths, 5, undefined, undefined, c);
    const y = parse(text) as { scrape_configs: { job_name: string; scheme?: string; tls_config?: object }[] };
    for (const j of y.scrape_configs) {
      if (j.job_name === 'etcd') expect(j).toMatchObject({ scheme: 'https', tls_config: { ca_file: c.caFile, cert_file: c.certFile, key_file: c.keyFile } });
      else expect(j.tls_config, j.job_name).toBeUndefined();
    }
    await writeFile(join(dir, 'prometheus.yml'), text);
    const r = await execa('promtool', ['check', 'config', '--syntax-only', join(dir, 'prometheus.yml')], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });
});
