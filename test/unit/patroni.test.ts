import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outdatedRestartPlan } from '../../src/components/patroni-upgrade.js';
import { parse } from 'yaml';
import { hostPaths } from '../../src/config/paths.js';
import { desiredDynamicConfig, dynamicConfigPatch, patroniHba, renderPatroniConfig, type PatroniCredentials } from '../../src/components/patroni.js';
import { labInv } from '../helpers/lab-inventory.js';


const creds: PatroniCredentials = {
  rest: { username: 'patroni', password: 'rest-pw-with: colon and "quote"' },
  superuser: { username: 'postgres', password: 'off' },
  replication: { username: 'replicator', password: 'repl#pw' },
  rewind: { username: 'rewind_user', password: '{not-a-map}' },
};

function rendered(name: string, inv = labInv()) {
  const h = inv.hosts.find((x) => x.name === name)!;
  return renderPatroniConfig(inv, h, hostPaths(inv, h), creds);
}

describe('renderPatroniConfig', () => {
  it('renders the node, DCS, REST and PostgreSQL settings from the inventory', () => {
    const y = parse(rendered('db1'));
    expect(y).toMatchObject({
      scope: 'dpgc-lab',
      namespace: '/service/',
      name: 'db1',
      restapi: { listen: '127.0.30.11:8008', connect_address: '127.0.30.11:8008', authentication: { username: 'patroni', password: creds.rest.password } },
      etcd3: { protocol: 'http', hosts: ['127.0.30.11:2379', '127.0.30.12:2379', '127.0.30.13:2379'] },
      postgresql: {
        listen: '127.0.30.11:5432',
        connect_address: '127.0.30.11:5432',
        data_dir: '/lab/db1/var/lib/postgresql/15/main',
        bin_dir: '/usr/lib/postgresql/15/bin',
        pgpass: '/lab/db1/var/lib/postgresql/.pgpass-dpgc',
        parameters: { unix_socket_directories: '/lab/db1/var/run/postgresql' },
        authentication: { superuser: creds.superuser, replication: creds.replication, rewind: creds.rewind },
      },
    });
    expect(y.bootstrap.dcs).toMatchObject({ ttl: 20, loop_wait: 1, retry_timeout: 6, synchronous_mode: true, synchronous_node_count: 1 });
    expect(y.bootstrap.dcs.postgresql).toMatchObject({ use_pg_rewind: true, use_slots: true });
    expect(y.bootstrap.initdb).toBeUndefined();
    expect(y.watchdog).toEqual({ mode: 'automatic', device: '/dev/watchdog', safety_margin: 5 });
  });

  it('takes the watchdog mode from the inventory, quoted (YAML 1.1 would read a bare off as false)', () => {
    const inv = labInv('patroni:\n  watchdog: "off"\n');
    const y = parse(renderPatroniConfig(inv, inv.hosts[1]!, hostPaths(inv, inv.hosts[1]!), creds));
    expect(y.watchdog.mode).toBe('off');
  });

  it('lets only the sprint-0 host bootstrap: a replica can never initdb a new cluster', () => {
    expect(parse(rendered('db2')).bootstrap).toBeUndefined();
    expect(parse(rendered('db2')).postgresql.parameters.unix_socket_directories).toBe('/lab/db2/var/run/postgresql');
  });

  it('quotes every value, so YAML 1.1 readers see strings (docs/lab-facts.md: bare off is false)', () => {
    const text = rendered('db1');
    expect(text).toContain('synchronous_commit: "on"');
    expect(text).toContain('hot_standby: "on"');
    // PyYAML (Patroni's parser) reads the same values back.
    const dir = mkdtempSync(join(tmpdir(), 'dpgc-patroni-'));
    const f = join(dir, 'p.yml');
    writeFileSync(f, text);
    const py = execFileSync('/usr/bin/python3', ['-c', 'import sys,yaml,json; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', f], { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    const back = JSON.parse(py);
    expect(back.postgresql.authentication.superuser.password).toBe('off');
    expect(back.bootstrap.dcs.postgresql.parameters.synchronous_commit).toBe('on');
    expect(back.restapi.authentication.password).toBe(creds.rest.password);
  });

  it('takes synchronous_commit, node count, max_connections and timings from the inventory', () => {
    const inv = labInv('postgres:\n  synchronous_commit: remote_apply\n  synchronous_node_count: 2\n  max_connections: 300\ntimings:\n  profile: fast\n');
    const d = desiredDynamicConfig(inv);
    expect(d).toMatchObject({ ttl: 20, loop_wait: 1, retry_timeout: 6, synchronous_node_count: 2 });
    expect(d.postgresql.parameters).toMatchObject({ synchronous_commit: 'remote_apply', max_connections: 300 });
  });

  it('allows only SCRAM from the inventory networks, peer for local postgres', () => {
    expect(patroniHba(labInv())).toEqual([
      'local all postgres peer',
      'local all all scram-sha-256',
      'host replication replicator 127.0.0.0/8 scram-sha-256',
      'host all all 127.0.0.0/8 scram-sha-256',
    ]);
    expect(rendered('db1')).not.toMatch(/\b(md5|trust|password)\b\s*"?$/m);
  });

  it('once TLS is required: plaintext TCP rejected by name (replication too, which `all` does not match), hostssl only, the members\' own connections verify-full', () => {
    expect(patroniHba(labInv(), { requireTls: true })).toEqual([
      'local all postgres peer',
      'local all all scram-sha-256',
      'hostnossl all all all reject',
      'hostnossl replication all all reject',
      'hostssl replication replicator 127.0.0.0/8 scram-sha-256',
      'hostssl all all 127.0.0.0/8 scram-sha-256',
    ]);
    const inv = labInv();
    const h = inv.hosts.find((x) => x.name === 'db2')!;
    const y = parse(renderPatroniConfig(inv, h, hostPaths(inv, h), creds, { requireTls: true })) as { postgresql: { authentication: Record<string, Record<string, string>>; pg_hba: string[] } };
    const ca = `${hostPaths(inv, h).tlsDir}/ca.crt`;
    expect(y.postgresql.authentication['replication']).toEqual({ username: 'replicator', password: 'repl#pw', sslmode: 'verify-full', sslrootcert: ca });
    expect(y.postgresql.authentication['rewind']).toEqual({ username: 'rewind_user', password: '{not-a-map}', sslmode: 'verify-full', sslrootcert: ca });
    // Patroni reaches its own server over the socket, where libpq ignores sslmode: the superuser is left alone.
    expect(y.postgresql.authentication['superuser']).toEqual({ username: 'postgres', password: 'off' });
    expect(y.postgresql.pg_hba).toEqual(patroniHba(inv, { requireTls: true }));
    expect(parse(rendered('db2')).postgresql.authentication.replication).not.toHaveProperty('sslmode');
  });

  it("serves the REST API over TLS with the member's own certificate only when told (restTls); every member trusts the CA as a client once TLS is required", () => {
    const inv = labInv();
    const h = inv.hosts.find((x) => x.name === 'db2')!;
    const tls = hostPaths(inv, h).tlsDir;
    type Y = { restapi: Record<string, unknown>; ctl?: Record<string, unknown> };
    const plain = parse(rendered('db2')) as Y;
    expect(plain.restapi).not.toHaveProperty('certfile');
    expect(plain).not.toHaveProperty('ctl');
    const required = parse(renderPatroniConfig(inv, h, hostPaths(inv, h), creds, { requireTls: true })) as Y;
    expect(required.restapi).not.toHaveProperty('certfile');
    expect(required.ctl).toEqual({ cacert: `${tls}/ca.crt` });
    const on = parse(renderPatroniConfig(inv, h, hostPaths(inv, h), creds, { requireTls: true, restTls: true })) as Y;
    expect(on.restapi).toMatchObject({ listen: '127.0.30.12:8008', certfile: `${tls}/patroni.crt`, keyfile: `${tls}/patroni.key` });
    // No client certificates: basic auth still guards the unsafe endpoints.
    expect(on.restapi).not.toHaveProperty('verify_client');
    expect(on.ctl).toEqual({ cacert: `${tls}/ca.crt` });
  });
});

describe('dynamicConfigPatch', () => {
  const desired = desiredDynamicConfig(labInv());

  it('is empty when Patroni already holds the desired values, however it spells them', () => {
    const current = JSON.parse(JSON.stringify(desired));
    current.postgresql.parameters.max_connections = '200';
    current.postgresql.parameters.hot_standby = true;
    current.postgresql.parameters.archive_mode = 'on'; // added by a later sprint: left alone
    current.failsafe_mode = false;
    expect(dynamicConfigPatch(current, desired)).toBeUndefined();
  });

  it('carries only what differs, nested', () => {
    const current = JSON.parse(JSON.stringify(desired));
    current.ttl = 30;
    current.postgresql.parameters.synchronous_commit = 'off';
    expect(dynamicConfigPatch(current, desired)).toEqual({ ttl: 20, postgresql: { parameters: { synchronous_commit: 'on' } } });
  });

  it('fills in everything on an empty DCS configuration', () => {
    expect(dynamicConfigPatch({}, desired)).toEqual(desired);
  });
});


describe('outdatedRestartPlan', () => {
  it('restarts outdated replicas first and the leader last; fixed and silent members are left alone', () => {
    expect(
      outdatedRestartPlan([
        { name: 'db1', role: 'leader', version: '3.0.2' },
        { name: 'db2', role: 'sync_standby', version: '3.0.2' },
        { name: 'db3', role: 'replica', version: '4.0.7' },
        { name: 'db4', role: 'replica' },
      ]),
    ).toEqual({ replicas: ['db2'], leader: 'db1' });
    expect(outdatedRestartPlan([{ name: 'db1', role: 'primary', version: '4.0.7' }])).toEqual({ replicas: [] });
  });
});
