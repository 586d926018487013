import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertRolesFor, missingRoles, parseInventory } from '../../src/config/load.js';
import { addressProblem, cidrProblem, closest, distance, pathProblem } from '../../src/config/messages.js';
import { coveredAddresses, insideCidr } from '../../src/config/rules.js';
import { ConfigError, ExitCode, formatIssue } from '../../src/errors.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';

/**
 * The loader as a pure function: text in, inventory or positioned problems
 * out. The bad-input catalogue itself is asserted end to end, through the
 * CLI, in test/integration/cli.test.ts; here are the rules behind it.
 */

const fixture = (name: string) => readFile(fileURLToPath(new URL(`../fixtures/inventories/${name}`, import.meta.url)), 'utf8');
const problems = (text: string) => parseInventory(text, 'dpgc.yaml').issues.map(formatIssue);
const HOSTS = `hosts:
  - { name: db1, address: 10.0.0.11, roles: [postgres, etcd] }
  - { name: db2, address: 10.0.0.12, roles: [postgres, etcd] }
  - { name: db3, address: 10.0.0.13, roles: [postgres, etcd] }
`;

describe('a valid inventory', () => {
  it('the minimal file is a cluster name and three hosts; everything else has a default', async () => {
    const r = parseInventory(await fixture('valid-minimal.yaml'), '/x/dpgc.yaml');
    expect(r.issues).toEqual([]);
    const inv = r.inventory!;
    expect(inv.file).toBe('/x/dpgc.yaml');
    expect(inv.postgres).toMatchObject({ version: 15, vector: 'pgvector', synchronous_node_count: 1 });
    expect(inv.ports.postgres).toBe(5432);
    // Unset, pg_hba admits exactly the inventory's hosts.
    expect(inv.network.allowed_cidrs).toEqual(['127.0.0.91/32', '127.0.0.92/32', '127.0.0.93/32']);
    expect(inv.timings).toMatchObject({ profile: 'balanced', ttl: 20, loop_wait: 1, retry_timeout: 6, rto_budget_s: 30 });
    expect(inv.hosts[1]).toEqual({
      name: 'db2',
      address: '127.0.0.92',
      roles: ['postgres', 'etcd'],
      transport: 'ssh',
      ssh: { user: 'root', port: 1, connect_timeout_s: 10 },
      root: '',
      services: 'systemd',
    });
  });

  it('a host overrides the defaults it sets and inherits the rest; repeated roles count once', () => {
    const r = parseInventory(
      `cluster: main
defaults: { ssh: { user: admin, sudo: true } }
hosts:
  - { name: db1, address: 10.0.0.11, roles: [postgres, postgres], transport: local, ssh: { port: 2222 }, root: /lab/db1, services: supervised }
`,
      'dpgc.yaml',
    );
    expect(r.inventory?.hosts[0]).toEqual({
      name: 'db1',
      address: '10.0.0.11',
      roles: ['postgres'],
      transport: 'local',
      ssh: { user: 'admin', port: 2222, sudo: true, connect_timeout_s: 10 },
      root: '/lab/db1',
      services: 'supervised',
    });
  });

  it('the lab inventory `dpgc lab init` writes is valid', () => {
    const r = parseInventory(labInventoryYaml({ dir: '/tmp/lab', subnet: '127.0.0' }), 'lab.yaml');
    expect(r.issues).toEqual([]);
    expect(r.inventory?.hosts.map((h) => [h.name, h.address, h.transport, h.services, h.root])).toEqual([
      ['ctl', '127.0.0.10', 'local', 'supervised', '/tmp/lab/ctl'],
      ['db1', '127.0.0.11', 'local', 'supervised', '/tmp/lab/db1'],
      ['db2', '127.0.0.12', 'local', 'supervised', '/tmp/lab/db2'],
      ['db3', '127.0.0.13', 'local', 'supervised', '/tmp/lab/db3'],
    ]);
  });

  it('a custom timing makes the profile "custom"', () => {
    const r = parseInventory(`cluster: main\ntimings: { profile: safe, ttl: 28 }\n${HOSTS}`, 'dpgc.yaml');
    expect(r.inventory?.timings).toMatchObject({ profile: 'custom', ttl: 28, loop_wait: 2, retry_timeout: 9 });
  });
});

describe('positions point at the key or value at fault', () => {
  it('an unknown key: the key; a bad value: the value; problems in file order', () => {
    expect(problems(`cluster: main\nports:\n  postgres: 70000\n  patroin: 8008\n${HOSTS}`)).toEqual([
      'dpgc.yaml:3:13: ports.postgres: expected a port number from 1 to 65535, got 70000',
      'dpgc.yaml:4:3: ports.patroin: unknown key "patroin"; did you mean "patroni"?',
    ]);
  });

  it('a missing field: the mapping it belongs in, with an example', () => {
    expect(problems(HOSTS)).toEqual(['dpgc.yaml:1:1: cluster: required field is missing; add it, e.g. `cluster: main`']);
    expect(problems('cluster: main\n')).toEqual([
      'dpgc.yaml:1:1: hosts: required field is missing; add it, e.g. `hosts: [{name: db1, address: 10.0.0.11, roles: [postgres, etcd]}, …] (three hosts is the usual minimum)`',
    ]);
  });

  it('a rule about a defaulted value points at the value the file sets', () => {
    // postgres keeps its default 5432; the file moved pgbouncer onto it.
    expect(problems(`cluster: main\nports: { pgbouncer: 5432 }\nhosts:\n  - { name: db1, address: 10.0.0.11, roles: [postgres, pgbouncer] }\n`)).toEqual([
      'dpgc.yaml:2:21: ports.pgbouncer: port 5432 is used by both postgres and pgbouncer on db1; give one of them another port under `ports:`',
    ]);
  });

  it('node_exporter runs on every host, so it clashes whatever the roles', () => {
    expect(problems(`cluster: main\nports: { node_exporter: 2379 }\n${HOSTS}`)).toEqual([
      'dpgc.yaml:2:25: ports.node_exporter: port 2379 is used by both node_exporter and etcd_client on db1, db2, db3; give one of them another port under `ports:`',
    ]);
  });
});

describe('operator language instead of the schema library’s', () => {
  it.each([
    ['postgres: { version: "16" }', 'dpgc.yaml:1:22: postgres.version: expected one of 15, 16, 17, got the text "16"; write 16 without quotes'],
    ['postgres: { vector: pgvectr }', 'dpgc.yaml:1:21: postgres.vector: expected one of pgvector, ruvector, got the text "pgvectr"; did you mean pgvector?'],
    ['timings: { ttl: 0 }', 'dpgc.yaml:1:17: timings.ttl: expected a number above 0, got 0'],
    ['timings: { ttl: 12.5 }', 'dpgc.yaml:1:17: timings.ttl: expected a whole number, got 12.5; use a whole number such as 13'],
    ['network: { allowed_cidrs: [] }', 'dpgc.yaml:1:27: network.allowed_cidrs: list at least one network, such as [10.0.0.0/24]'],
    ['defaults: { ssh: { sudo: "yes" } }', 'dpgc.yaml:1:26: defaults.ssh.sudo: expected true or false, got the text "yes"; write true or false without quotes'],
    ['grafana: { url: grafana }', 'dpgc.yaml:1:17: grafana.url: expected an http:// or https:// URL such as http://10.0.0.10:3000, got the text "grafana"'],
    ['postgres: [15]', 'dpgc.yaml:1:11: postgres: expected a mapping (key: value lines), got a list'],
  ])('%s', (line, message) => {
    // The line under test is line 6, after the cluster name and three hosts.
    expect(problems(`cluster: main\n${HOSTS}${line}\n`)).toEqual([message.replace('dpgc.yaml:1:', 'dpgc.yaml:6:')]);
  });

  it('a host without roles', () => {
    expect(problems('cluster: main\nhosts:\n  - { name: db1, address: 10.0.0.11, roles: [] }\n')).toEqual([
      'dpgc.yaml:3:45: hosts[0].roles: give the host at least one role: postgres, etcd, haproxy, pgbouncer, monitoring, backup',
    ]);
  });
});

describe('addresses and CIDRs', () => {
  it.each([
    ['10.0.0.11', undefined],
    ['10.0.0', 'expected an IPv4 address such as 10.0.0.11, got the text "10.0.0": 10.0.0 has 3 parts, not 4'],
    ['10.0.0.011', 'expected an IPv4 address such as 10.0.0.11, got the text "10.0.0.011": write 011 as 11: a leading zero reads as octal to some tools'],
    ['0.0.0.0', "expected an IPv4 address such as 10.0.0.11, got the text \"0.0.0.0\": that is not one host's address; give the address the host is reached at"],
    ['10.0.0.1/32', 'expected an IPv4 address such as 10.0.0.11, got the text "10.0.0.1/32": only digits and dots belong in it'],
  ])('address %s', (s, problem) => {
    expect(addressProblem(s)).toBe(problem);
  });

  it.each([
    ['10.0.0.0/24', undefined],
    ['10.0.0.5/32', undefined],
    ['10.0.0.0', 'expected a CIDR such as 10.0.0.0/24, got the text "10.0.0.0": the prefix length is missing; write 10.0.0.0/24 for a network, or 10.0.0.0/32 for one host'],
    ['10.0.0.0/', 'expected a CIDR such as 10.0.0.0/24, got the text "10.0.0.0/": the prefix length / is out of range; an IPv4 prefix is /1 to /32'],
    ['300.0.0.0/8', 'expected a CIDR such as 10.0.0.0/24, got the text "300.0.0.0/8": 300 is above 255'],
  ])('CIDR %s', (s, problem) => {
    expect(cidrProblem(s)).toBe(problem);
  });

  it.each([
    ['10.0.0.11', '10.0.0.0/24', true],
    ['10.0.1.11', '10.0.0.0/24', false],
    ['10.0.0.11', '10.0.0.11/32', true],
    ['10.0.0.12', '10.0.0.11/32', false],
    ['172.31.255.1', '172.16.0.0/12', true],
    ['172.32.0.1', '172.16.0.0/12', false],
    ['127.0.60.11', '127.0.0.0/8', true],
  ])('%s inside %s: %s', (a, c, want) => {
    expect(insideCidr(a, c)).toBe(want);
  });

  it('a host outside network.allowed_cidrs is an error at its address, saying what to do', () => {
    const text = `cluster: c\nnetwork:\n  allowed_cidrs: [10.0.0.0/28]\n${HOSTS.replace('10.0.0.13', '10.0.0.19')}`;
    expect(problems(text)).toEqual([
      'dpgc.yaml:7:27: hosts[2].address: db3 (10.0.0.19) is outside network.allowed_cidrs (10.0.0.0/28): PostgreSQL and Patroni would refuse its connections; add its network to network.allowed_cidrs, or leave that list out to allow exactly the inventory\'s hosts',
    ]);
  });

  it('did-you-mean counts a swap of neighbours as one edit and ignores far-off words', () => {
    expect(distance('etdc', 'etcd')).toBe(1);
    expect(closest('etdc', ['postgres', 'etcd'])).toBe('etcd');
    expect(closest('synchronous_mod', ['synchronous_commit', 'synchronous_node_count'])).toBeUndefined();
  });
});

describe('values by what they are: paths, user names, images, settings', () => {
  const ABS = 'expected an absolute path such as /srv/dpgc, got the text';
  it.each([
    ['/srv/lab/db1', undefined],
    ['/srv/lab-1/db_1.x', undefined],
    ['lab/db1', 'expected an absolute path starting with /, got the text "lab/db1"'],
    ['/srv/$(id)', `${ABS} "/srv/$(id)": "$", "(", ")" are not allowed; use letters, digits, ., _, - and /`],
    ['/srv/`id`', `${ABS} "/srv/\`id\`": "\`" is not allowed; use letters, digits, ., _, - and /`],
    ["/srv/it's", `${ABS} "/srv/it's": "'" is not allowed; use letters, digits, ., _, - and /`],
    ['/srv/a;b', `${ABS} "/srv/a;b": ";" is not allowed; use letters, digits, ., _, - and /`],
    ['/srv/a\nb', `${ABS} "/srv/a\\nb": it contains a control character (a newline, tab or the like)`],
    ['/srv/a\u2028b', `${ABS} "/srv/a\u2028b": it contains a control character (a newline, tab or the like)`],
    ['/srv/../etc', `${ABS} "/srv/../etc": a ".." segment is not allowed; write the directory it leads to`],
    ['/srv/./lab/', `${ABS} "/srv/./lab/": write it normalised, as /srv/lab`],
    ['/', `${ABS} "/": the filesystem root itself is not a directory dpgc may manage`],
    ['~/lab', 'expected an absolute path starting with /, got the text "~/lab"'],
  ])('a managed path %j', (p, problem) => {
    expect(pathProblem(p)).toBe(problem);
  });

  it.each([
    ['~/.ssh/id_ed25519', undefined],
    ['/etc/dpgc/known_hosts', undefined],
    ['~', 'expected an absolute path or ~/… such as ~/.ssh/id_ed25519 or /etc/dpgc/id_ed25519, got the text "~": start it with / or ~/'],
    ['/home/~x/key', 'expected an absolute path or ~/… such as ~/.ssh/id_ed25519 or /etc/dpgc/id_ed25519, got the text "/home/~x/key": "~" is not allowed (~ only at the start, as ~/); use letters, digits, ., _, - and /'],
    ['~/../key', 'expected an absolute path or ~/… such as ~/.ssh/id_ed25519 or /etc/dpgc/id_ed25519, got the text "~/../key": a ".." segment is not allowed; write the directory it leads to'],
  ])('an ssh file %j', (p, problem) => {
    expect(pathProblem(p, { home: true })).toBe(problem);
  });

  it.each([
    ['ruvnet/ruvector-postgres:2.0.4', true],
    ['registry.example.com:5000/team/ruvector:2.0.4', true],
    [`ruvnet/ruvector-postgres@sha256:${'a'.repeat(64)}`, true],
    ['ruvnet/ruvector-postgres', false],
    ['ruvnet/ruvector-postgres:latest;id', false],
    ['--privileged:1', false],
    ['ruvnet/Ruvector:1', false],
    ['ruvnet/ruvector:$(id)', false],
  ])('image %s accepted: %s', (image, ok) => {
    const r = parseInventory(`cluster: main\npostgres: { ruvector_image: ${JSON.stringify(image)} }\n${HOSTS}`, 'dpgc.yaml');
    expect(r.issues.length === 0).toBe(ok);
  });

  it.each([
    ['admin', true],
    ['_svc-dpgc1', true],
    ['Admin', false],
    ['root;id', false],
    ['-oProxyCommand=x', false],
    ['a'.repeat(33), false],
  ])('ssh user %j accepted: %s', (user, ok) => {
    const r = parseInventory(`cluster: main\ndefaults: { ssh: { user: ${JSON.stringify(user)} } }\n${HOSTS}`, 'dpgc.yaml');
    expect(r.issues.length === 0).toBe(ok);
  });

  it('settings: lowercase names, values on one line; quotes and $(…) are data, quoted by the renderer', () => {
    const ok = parseInventory(`cluster: main\npostgres: { settings: { pg_stat_statements.max: 1000, application_name: "it's $(id)", jit: false } }\n${HOSTS}`, 'dpgc.yaml');
    expect(ok.issues).toEqual([]);
    expect(problems(`cluster: main\npostgres: { settings: { "a\\tb": 1, work_mem: "1\\r2" } }\n${HOSTS}`)).toEqual([
      'dpgc.yaml:2:25: postgres.settings["a\\tb"]: expected a PostgreSQL setting name of lowercase letters, digits, _ and ., such as work_mem, got the text "a\\tb"',
      'dpgc.yaml:2:46: postgres.settings.work_mem: expected a value on one line, without control characters, got the text "1\\r2"',
    ]);
  });

  it('one etcd member is refused: losing it stops every write', () => {
    const oneEtcd = 'cluster: main\nhosts:\n  - { name: db1, address: 10.0.0.11, roles: [postgres, etcd] }\n  - { name: db2, address: 10.0.0.12, roles: [postgres] }\n';
    expect(problems(oneEtcd)).toEqual([
      'dpgc.yaml:2:1: hosts: 1 host has the etcd role; etcd needs 3 (or 5) members, so that losing one keeps a quorum: with 1, its loss stops every write (Patroni demotes the primary). Add etcd to two more hosts',
    ]);
  });

  it('allowed networks: at most a /8 each, and never the whole internet together', () => {
    expect(cidrProblem('10.0.0.0/8')).toBeUndefined();
    expect(cidrProblem('0.0.0.0/7')).toBe(
      "expected a CIDR such as 10.0.0.0/24, got the text \"0.0.0.0/7\": /7 spans 33,554,432 addresses, far more than any cluster's own networks; list only those (/8 or narrower)",
    );
    const everyEight = Array.from({ length: 256 }, (_, i) => `${i}.0.0.0/8`);
    expect(coveredAddresses(everyEight)).toBe(2 ** 32);
    expect(coveredAddresses(['10.0.0.0/8', '10.1.0.0/16', '127.0.0.0/8'])).toBe(2 * 2 ** 24);
    const text = `cluster: main\nnetwork:\n  allowed_cidrs: [${everyEight.join(', ')}]\n${HOSTS.replace(/10\.0\.0\./g, '10.0.0.')}`;
    expect(problems(text)).toEqual([
      'dpgc.yaml:3:3: network.allowed_cidrs: together these networks cover every IPv4 address (256 entries): anyone on the internet could connect; list only your own networks',
    ]);
  });

  it('timings have upper bounds too', () => {
    expect(problems(`cluster: main\ntimings: { ttl: 99999999, loop_wait: 61, retry_timeout: 121 }\n${HOSTS}`)).toEqual([
      'dpgc.yaml:2:17: timings.ttl: expected a number of at most 300, got 99999999',
      'dpgc.yaml:2:38: timings.loop_wait: expected a number of at most 60, got 61',
      'dpgc.yaml:2:57: timings.retry_timeout: expected a number of at most 120, got 121',
    ]);
  });
});

describe('roles a sprint needs', () => {
  it('names every missing role and how to add it, as a configuration error', async () => {
    const inv = parseInventory(`cluster: main\nhosts:\n  - { name: db1, address: 10.0.0.11, roles: [postgres] }\n`, '/x/dpgc.yaml').inventory!;
    expect(missingRoles(inv, 1)).toEqual(['pgbouncer', 'monitoring']);
    expect(missingRoles(inv, 0)).toEqual([]);
    expect(() => assertRolesFor(inv, 0)).not.toThrow();
    let err: unknown;
    try {
      assertRolesFor(inv, 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(ExitCode.config);
    expect((err as ConfigError).message).toBe('/x/dpgc.yaml: sprint 1 needs a host with the roles pgbouncer, monitoring, and no host has them');
    expect((err as ConfigError).hint).toBe(
      'To fix: add pgbouncer to the roles of the host clients connect to, e.g. the control host.\n' +
        'To fix: add monitoring to the roles of one host, e.g. the control host.\n' +
        'Roles go under each host in `hosts:`; `dpgc lab init` writes a complete example.',
    );
  });
});
