import bcrypt from 'bcryptjs';
import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { endpointProblems, metricsEndpoints, type Answers, type MetricsEndpoint } from '../../src/checks/metrics.js';
import { alertmanagerService } from '../../src/components/alertmanager.js';
import { nodeExporterService, pgbouncerExporterEnv, postgresExporterService } from '../../src/components/exporters.js';
import { renderDatasource } from '../../src/components/grafana.js';
import { keptHash, metricsCertRequest, metricsFiles, metricsUser, pbkdf2Line, renderAmtoolConfig, renderWebConfig, scrapeTls } from '../../src/components/metrics-web.js';
import { prometheusService, renderPrometheusYml, RULE_FILES, ruleFileText } from '../../src/components/prometheus.js';
import { webTarget } from '../../src/components/web-client.js';
import { hostPaths } from '../../src/config/paths.js';
import { parseEnvFile } from '../../src/hosts/env-file.js';
import { labInv } from '../helpers/lab-inventory.js';

/**
 * The metrics plane behind TLS and basic auth (sprint 5), pure parts: the
 * web config, as exporter-toolkit's own checker reads it; Prometheus's
 * config with https scrapes, as promtool reads it; the bcrypt hash kept
 * while it matches; and the verdict on what one endpoint answered.
 */
const inv = labInv();
const host = (name: string) => inv.hosts.find((h) => h.name === name)!;
const node = (name: string) => ({ spec: host(name), paths: hostPaths(inv, host(name)) });
const METRICS_USER = metricsUser('metrics-password-0123456789');
const tls = { ca: 'CA PEM', username: METRICS_USER, password: 'metrics-password-0123456789' };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-metrics-tls-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the web config', () => {
  it('off: plaintext and no users, and promtool accepts it (what every endpoint serves before sprint 5)', async () => {
    const text = renderWebConfig({ name: 'db1' });
    expect(parse(text)).toEqual({});
    await writeFile(join(dir, 'off.yml'), text);
    const r = await execa('promtool', ['check', 'web-config', join(dir, 'off.yml')], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });

  it('on: the host certificate, TLS 1.2 at least, one user with a bcrypt hash; promtool accepts it (it loads the key pair)', async () => {
    const f = metricsFiles({ ...hostPaths(inv, host('db1')), tlsDir: dir });
    await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f.key, '-out', f.cert, '-subj', '/CN=db1', '-days', '2']);
    const hash = await keptHash(tls.password, undefined);
    const text = renderWebConfig({ name: 'db1' }, { cert: f.cert, key: f.key, users: [{ username: METRICS_USER, hash }] });
    expect(parse(text)).toEqual({ tls_server_config: { cert_file: f.cert, key_file: f.key, min_version: 'TLS12' }, basic_auth_users: { [METRICS_USER]: hash } });
    expect(text).not.toContain(tls.password);
    await writeFile(join(dir, 'on.yml'), text);
    const r = await execa('promtool', ['check', 'web-config', join(dir, 'on.yml')], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });

  it('keeps the hash in place while it matches the password (no rewrite, no restart), and makes a new one when it does not', async () => {
    const f = metricsFiles(hostPaths(inv, host('db1')));
    const first = await keptHash(tls.password, undefined);
    expect(await bcrypt.compare(tls.password, first)).toBe(true);
    const file = renderWebConfig({ name: 'db1' }, { cert: f.cert, key: f.key, users: [{ username: METRICS_USER, hash: first }] });
    expect(await keptHash(tls.password, file)).toBe(first);
    const rotated = await keptHash('another-password-0123456789', file);
    expect(rotated).not.toBe(first);
    expect(await bcrypt.compare('another-password-0123456789', rotated)).toBe(true);
    expect(await keptHash(tls.password, 'not: [yaml')).toMatch(/^\$2/);
  });

  it('the user name is tagged from the password: the same for every consumer, another for another password', () => {
    expect(metricsUser(tls.password)).toMatch(/^dpgc_metrics_[0-9a-f]{8}$/);
    expect(metricsUser(tls.password)).toBe(METRICS_USER);
    expect(metricsUser('another-password-0123456789')).not.toBe(METRICS_USER);
  });

  it('during a rotation: two users, each with its own bcrypt hash, and promtool accepts it', async () => {
    const f = metricsFiles({ ...hostPaths(inv, host('db1')), tlsDir: dir });
    const other = 'another-password-0123456789';
    const first = await keptHash(tls.password, undefined);
    const both = renderWebConfig({ name: 'db1' }, { cert: f.cert, key: f.key, users: [{ username: METRICS_USER, hash: first }, { username: metricsUser(other), hash: await keptHash(other, undefined) }] });
    const users = (parse(both) as { basic_auth_users: Record<string, string> }).basic_auth_users;
    expect(Object.keys(users)).toEqual([METRICS_USER, metricsUser(other)]);
    expect(await bcrypt.compare(other, users[metricsUser(other)]!)).toBe(true);
    // Each user's hash is kept by name: adding the new user rewrites no hash of the old one.
    expect(await keptHash(tls.password, both)).toBe(first);
    await writeFile(join(dir, 'both.yml'), both);
    const r = await execa('promtool', ['check', 'web-config', join(dir, 'both.yml')], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });

  it("the PgBouncer exporter's users file: one PBKDF2 line per user, the same on every run, and Python's hashlib agrees", async () => {
    const line = pbkdf2Line('ctl', METRICS_USER, tls.password);
    expect(pbkdf2Line('ctl', METRICS_USER, tls.password)).toBe(line);
    expect(pbkdf2Line('db1', METRICS_USER, tls.password)).not.toBe(line);
    expect(line).not.toContain(tls.password);
    const [user, rounds, salt, digest] = line.split(':');
    expect(user).toBe(METRICS_USER);
    const py = await execa('python3', ['-c', 'import hashlib,sys; print(hashlib.pbkdf2_hmac("sha256", sys.argv[1].encode(), bytes.fromhex(sys.argv[2]), int(sys.argv[3])).hex())', tls.password, salt!, rounds!]);
    expect(py.stdout.trim()).toBe(digest);
  });

  it('one certificate per host: its name and address, server use', () => {
    expect(metricsCertRequest(host('db2'))).toEqual({ name: 'metrics', cn: 'db2', dns: ['db2'], ips: [host('db2').address], usage: ['server'] });
  });

  it('every exporter-toolkit daemon always gets --web.config.file, so a restart by any sprint keeps what the file says', () => {
    const flag = `--web.config.file=${metricsFiles(node('db1').paths).webConfig}`;
    expect(nodeExporterService(inv, node('db1')).argv).toContain(flag);
    expect(postgresExporterService(inv, node('db1')).argv).toContain(flag);
    const ctlFlag = `--web.config.file=${metricsFiles(node('ctl').paths).webConfig}`;
    expect(prometheusService(inv, node('ctl')).argv).toContain(ctlFlag);
    expect(alertmanagerService(inv, node('ctl'), { tls: true }).argv).toEqual(expect.arrayContaining([ctlFlag, `--web.external-url=https://${host('ctl').address}:9093`]));
  });

  it("the PgBouncer exporter's environment carries the certificate and the credentials once on, nothing before", async () => {
    const secrets = { get: async () => 'admin-password-0123456789' };
    const off = parseEnvFile(await pgbouncerExporterEnv(inv, node('ctl'), secrets), 'env');
    expect(Object.keys(off).filter((k) => k.startsWith('PGBOUNCER_EXPORTER_'))).toEqual(['PGBOUNCER_EXPORTER_LISTEN']);
    const on = parseEnvFile(await pgbouncerExporterEnv(inv, node('ctl'), secrets, tls), 'env');
    const f = metricsFiles(node('ctl').paths);
    expect(on).toMatchObject({ PGBOUNCER_EXPORTER_TLS_CERT: f.cert, PGBOUNCER_EXPORTER_TLS_KEY: f.key, PGBOUNCER_EXPORTER_USERS_FILE: f.webUsers });
    // Its own login to PgBouncer verifies PgBouncer's certificate, as every client does once PgBouncer requires TLS.
    expect(on).toMatchObject({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: f.ca });
    expect(off).not.toHaveProperty('PGSSLMODE');
    // The users come from a file it reads on every request (a rotation restarts nothing), never a password in its environment.
    expect(Object.values(on)).not.toContain(tls.password);
  });
});

describe("Prometheus's config with TLS on", () => {
  it('scrapes the metrics endpoints over https with the CA and a password file, the others as before, and passes promtool check config', async () => {
    const paths = { ...hostPaths(inv, host('ctl')), prometheusDir: dir, tlsDir: join(dir, 'tls'), metricsSecrets: join(dir, 'secrets') };
    await mkdir(join(dir, 'rules'), { recursive: true });
    await mkdir(paths.tlsDir, { recursive: true });
    await mkdir(paths.metricsSecrets, { recursive: true });
    for (const f of RULE_FILES) await writeFile(join(dir, 'rules', f), ruleFileText(f));
    const t = scrapeTls(paths, METRICS_USER);
    await writeFile(t.caFile, 'unused by promtool\n');
    await writeFile(t.passwordFile, tls.password);
    const text = renderPrometheusYml(inv, paths, 5, undefined, t);
    expect(text).not.toContain(tls.password);
    const y = parse(text) as { scrape_configs: { job_name: string; scheme?: string; tls_config?: { ca_file: string }; basic_auth?: { username: string; password_file: string } }[]; alerting: { alertmanagers: object[] } };
    const secured = { scheme: 'https', tls_config: { ca_file: t.caFile }, basic_auth: { username: METRICS_USER, password_file: t.passwordFile } };
    for (const j of y.scrape_configs) {
      if (['prometheus', 'node', 'postgres', 'pgbouncer'].includes(j.job_name)) expect(j, j.job_name).toMatchObject(secured);
      // Patroni's REST API serves TLS from sprint 5 on too; GET /metrics is a safe endpoint, no credentials.
      else if (j.job_name === 'patroni') expect(j).toMatchObject({ scheme: 'https', tls_config: { ca_file: t.caFile } });
      else expect(j.scheme, j.job_name).toBeUndefined();
      if (!['prometheus', 'node', 'postgres', 'pgbouncer'].includes(j.job_name)) expect(j.basic_auth, j.job_name).toBeUndefined();
    }
    expect(y.alerting.alertmanagers[0]).toMatchObject(secured);
    await writeFile(join(dir, 'prometheus.yml'), text);
    const r = await execa('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });

  it("amtool's client config and Grafana's datasource read the CA and the password from files, never inline", () => {
    const f = metricsFiles(hostPaths(inv, host('ctl')));
    expect(parse(renderAmtoolConfig(f, METRICS_USER))).toEqual({ basic_auth: { username: METRICS_USER, password_file: f.password(METRICS_USER) }, tls_config: { ca_file: f.ca } });
    const text = renderDatasource(inv, { ...tls, caFile: f.ca, passwordFile: f.grafanaPassword(METRICS_USER) });
    expect(text).not.toContain(tls.password);
    expect(parse(text).datasources[0]).toMatchObject({
      url: `https://${host('ctl').address}:9090`,
      basicAuth: true,
      basicAuthUser: METRICS_USER,
      jsonData: { tlsAuthWithCACert: true },
      secureJsonData: { basicAuthPassword: `$__file{${f.grafanaPassword(METRICS_USER)}}`, tlsCACert: `$__file{${f.ca}}` },
    });
    expect(webTarget('10.0.0.1:9090', tls)).toEqual({ base: 'https://10.0.0.1:9090', ca: tls.ca, auth: { username: METRICS_USER, password: tls.password } });
    expect(webTarget('10.0.0.1:9090', undefined)).toEqual({ base: 'http://10.0.0.1:9090' });
  });
});

describe('s5.tls.metrics verdicts', () => {
  const e: MetricsEndpoint = { host: 'db2', what: 'node_exporter', hostPort: '10.0.0.12:9100', path: '/metrics' };
  const now = new Date('2027-01-01T00:00:00Z');
  const far = new Date('2027-12-01T00:00:00Z');
  const ok: Answers = {
    plain: { status: 400, body: 'Client sent an HTTP request to an HTTPS server.\n' },
    anonymous: { status: 401, body: 'Unauthorized\n', peerValidTo: far },
    authed: { status: 200, body: 'up 1\n', peerValidTo: far },
  };

  it('every metrics endpoint the lab has: node_exporter everywhere, postgres_exporter on each member, the PgBouncer exporter, Prometheus, Alertmanager', () => {
    const list = metricsEndpoints(inv, 5).map((x) => `${x.what}@${x.host}`);
    expect(list.sort()).toEqual(
      ['Alertmanager@ctl', 'Prometheus@ctl', 'node_exporter@ctl', 'node_exporter@db1', 'node_exporter@db2', 'node_exporter@db3', 'postgres_exporter@db1', 'postgres_exporter@db2', 'postgres_exporter@db3', 'the PgBouncer exporter@ctl'].sort(),
    );
  });

  it('refused plaintext (400 of a TLS listener, or a closed connection), 401 anonymous, 200 with credentials: nothing wrong', () => {
    expect(endpointProblems(e, ok, now)).toEqual([]);
    expect(endpointProblems(e, { ...ok, plain: new Error('the connection was closed without an answer') }, now)).toEqual([]);
  });

  it('names the host and endpoint of each way it fails', () => {
    expect(endpointProblems(e, { ...ok, plain: { status: 200, body: 'up 1' } }, now)).toEqual(['node_exporter on db2 (10.0.0.12:9100) answers plaintext HTTP (HTTP 200)']);
    expect(endpointProblems(e, { ...ok, plain: { status: 401, body: 'Unauthorized' } }, now)).toEqual(['node_exporter on db2 (10.0.0.12:9100) answers plaintext HTTP (HTTP 401)']);
    expect(endpointProblems(e, { ...ok, anonymous: { status: 200, body: '' } }, now)).toEqual(['node_exporter on db2 (10.0.0.12:9100) answers HTTPS without credentials (HTTP 200, want 401)']);
    expect(endpointProblems(e, { ...ok, authed: { status: 401, body: '' } }, now)).toEqual(["node_exporter on db2 (10.0.0.12:9100) refuses dpgc's credentials (HTTP 401)"]);
    const plaintext = { plain: { status: 200, body: 'up 1' }, anonymous: new Error('it does not speak TLS (wrong version number)'), authed: new Error('it does not speak TLS (wrong version number)') };
    expect(endpointProblems(e, plaintext, now)).toEqual([
      'node_exporter on db2 (10.0.0.12:9100) answers plaintext HTTP (HTTP 200)',
      'node_exporter on db2 (10.0.0.12:9100) does not serve TLS verified by the cluster CA: it does not speak TLS (wrong version number)',
    ]);
    const soon = { ...ok, anonymous: { status: 401, body: '', peerValidTo: new Date('2027-01-11T00:00:00Z') } };
    expect(endpointProblems(e, soon, now)).toEqual(['node_exporter on db2 (10.0.0.12:9100): its certificate ends 2027-01-11 (10 days)']);
  });
});
