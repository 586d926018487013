import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { renderAlertmanagerYml } from '../../src/components/alertmanager.js';
import { renderEtcdEnv } from '../../src/components/etcd.js';
import { firewallFor, renderFirewall, renderFirewallUnit } from '../../src/components/firewall.js';
import { renderDashboardProvider, renderDatasource } from '../../src/components/grafana.js';
import { renderHaproxyConfig } from '../../src/components/haproxy.js';
import { renderPatroniConfig, type PatroniCredentials } from '../../src/components/patroni.js';
import { baseInstanceBackends, renderPgbouncerIni } from '../../src/components/pgbouncer.js';
import { renderDpgcConf, renderPgHba } from '../../src/components/postgres.js';
import { renderSystemdUnit } from '../../src/hosts/services.js';
import { renderScheduleLoop, renderScheduledBackup, renderTimerUnits } from '../../src/components/backup-schedule.js';
import { renderPgbackrestConf } from '../../src/components/pgbackrest.js';
import { renderPrometheusYml } from '../../src/components/prometheus.js';
import { renderAmtoolConfig, renderWebConfig } from '../../src/components/metrics-web.js';
import { parseInventory } from '../../src/config/load.js';
import { hostPaths, type HostPaths } from '../../src/config/paths.js';
import type { Inventory } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { renderSshdConfig } from '../../src/lab/ssh.js';
import { TEMPLATES_DIR } from '../../src/templates.js';
import { parseIni, parsePgConf, parseShEnv, shWord } from '../helpers/config-parsers.js';
import { labInv } from '../helpers/lab-inventory.js';
import { mulberry32 } from '../../src/checks/embeddings.js';

/**
 * Issue 10: no value reaches a config file unchecked. Every template is
 * rendered with hostile values put straight into the renderer (as if the
 * schema had let them through): each file either reads back, by its own
 * format's rules, to exactly the value put in, or the renderer refuses the
 * value. Then random strings go through the schema: whatever it accepts
 * renders and reads back exactly.
 */

const creds: PatroniCredentials = {
  rest: { username: 'patroni', password: 'rest-password-123' },
  superuser: { username: 'postgres', password: 'superuser-password' },
  replication: { username: 'replicator', password: 'replication-password' },
  rewind: { username: 'rewind_user', password: 'rewind-password' },
};

/** One template: render with `v` in the fields named, and read back what the file says those fields are. */
interface Case {
  /** How the format quotes: 'word' formats accept plain words only. */
  format: 'sh' | 'yaml' | 'pgconf' | 'systemd' | 'word';
  /** Renders with `v` put into the file, returns [what the file reads back as, what it should be]. */
  roundTrip(v: string, inv: Inventory, paths: HostPaths): [unknown, unknown];
}

const db1 = (inv: Inventory) => inv.hosts.find((h) => h.name === 'db1')!;
const ctl = (inv: Inventory) => inv.hosts.find((h) => h.name === 'ctl')!;
const pathsOf = (inv: Inventory, name = 'db1') => hostPaths(inv, inv.hosts.find((h) => h.name === name)!);

const CASES: Record<string, Case> = {
  'etcd/etcd.env.eta': {
    format: 'sh',
    roundTrip: (v, inv) => [parseShEnv(renderEtcdEnv(inv, db1(inv), { etcdData: `${v}/etcd`, tlsDir: `${v}/tls` }, 'tls')).ETCD_DATA_DIR, `${v}/etcd`],
  },
  'postgresql/dpgc.conf.eta': {
    format: 'pgconf',
    roundTrip: (v, inv) => {
      const withSetting = { ...inv, postgres: { ...inv.postgres, settings: { application_name: v } } };
      const conf = parsePgConf(renderDpgcConf(withSetting, db1(inv), { pgSocketDir: `${v}/run` }));
      return [[conf['application_name'], conf['unix_socket_directories']], [v, `${v}/run`]];
    },
  },
  'postgresql/pg_hba.conf.eta': {
    format: 'word',
    roundTrip: (v, inv) => {
      const line = renderPgHba({ ...inv, network: { allowed_cidrs: [v] } })
        .split('\n')
        .find((l) => l.startsWith('host '))!;
      return [line.split(/\s+/)[3], v];
    },
  },
  'patroni/patroni.yml.eta': {
    format: 'yaml',
    roundTrip: (v, inv, p) => {
      const y = parse(renderPatroniConfig(inv, db1(inv), { ...p, pgData: `${v}/data`, pgpass: `${v}/.pgpass` }, creds), { version: '1.1' });
      return [[y.postgresql.data_dir, y.postgresql.pgpass], [`${v}/data`, `${v}/.pgpass`]];
    },
  },
  'prometheus/prometheus.yml.eta': {
    format: 'yaml',
    roundTrip: (v, inv, p) => {
      const y = parse(renderPrometheusYml(inv, { ...p, prometheusDir: v }, 3, undefined, { caFile: v, username: v, passwordFile: `${v}/p` }));
      const job = y.scrape_configs[0];
      const am = y.alerting.alertmanagers[0];
      return [
        [y.rule_files[0], job.tls_config.ca_file, job.basic_auth.username, job.basic_auth.password_file, am.tls_config.ca_file, am.basic_auth.password_file],
        [`${v}/rules/postgres.yml`, v, v, `${v}/p`, v, `${v}/p`],
      ];
    },
  },
  'prometheus/web-config.yml.eta': {
    format: 'yaml',
    roundTrip: (v) => {
      const y = parse(renderWebConfig({ name: 'db1' }, { cert: v, key: `${v}.key`, users: [{ username: v, hash: v }] }));
      return [[y.tls_server_config.cert_file, y.tls_server_config.key_file, y.basic_auth_users[v]], [v, `${v}.key`, v]];
    },
  },
  'alertmanager/amtool-http.yml.eta': {
    format: 'yaml',
    roundTrip: (v) => {
      const y = parse(renderAmtoolConfig({ ca: v, password: (u) => `${v}/${u}` }, v));
      return [[y.tls_config.ca_file, y.basic_auth.username, y.basic_auth.password_file], [v, v, `${v}/${v}`]];
    },
  },
  'alertmanager/alertmanager.yml.eta': {
    format: 'yaml',
    roundTrip: (v, inv, p) => {
      const alerting = { ...inv.alerting, receiver: v, receivers: [{ name: v, webhook: { url: v, token: true }, send_resolved: true }], routes: [{ receiver: v, matchers: [v], continue: false }], group_by: [v] };
      const y = parse(renderAlertmanagerYml({ ...inv, alerting }, { ...p, alertmanagerSecrets: v }));
      const hook = y.receivers[0].webhook_configs[0];
      return [
        [y.route.receiver, y.route.group_by[0], y.route.routes[0].matchers[0], y.receivers[0].name, hook.url, hook.http_config.authorization.credentials_file],
        [v, v, v, v, v, `${v}/${v}`],
      ];
    },
  },
  'grafana/datasource.yml.eta': {
    format: 'yaml',
    roundTrip: (v, inv) => {
      const hosts = inv.hosts.map((h) => (h.roles.includes('monitoring') ? { ...h, address: v } : h));
      const plain = parse(renderDatasource({ ...inv, hosts })).datasources[0];
      const tls = parse(renderDatasource(inv, { ca: 'x', username: v, password: 'p', caFile: v, passwordFile: v })).datasources[0];
      return [
        [plain.url, tls.basicAuthUser, tls.secureJsonData.basicAuthPassword, tls.secureJsonData.tlsCACert],
        [`http://${v}:${inv.ports.prometheus}`, v, `$__file{${v}}`, `$__file{${v}}`],
      ];
    },
  },
  'grafana/dashboards.yml.eta': {
    format: 'yaml',
    roundTrip: (v) => [parse(renderDashboardProvider({ grafanaDashboards: v })).providers[0].options.path, v],
  },
  'pgbouncer/pgbouncer.ini.eta': {
    format: 'word',
    roundTrip: (v, inv) => {
      const ini = parseIni(renderPgbouncerIni(inv, ctl(inv), { pgbouncerDir: v, pgSocketDir: v, tlsDir: v }, baseInstanceBackends(inv), { serverTls: true }));
      const p = ini['pgbouncer']!;
      return [
        [p['unix_socket_dir'], p['auth_file'], p['server_tls_ca_file'], p['client_tls_cert_file'], p['client_tls_key_file']],
        [v, `${v}/userlist.txt`, `${v}/server-ca.crt`, `${v}/pgbouncer.crt`, `${v}/pgbouncer.key`],
      ];
    },
  },
  'haproxy/haproxy.cfg.eta': {
    format: 'word',
    roundTrip: (v, inv) => {
      const cfg = renderHaproxyConfig(inv, ctl(inv), { haproxySocket: v }, 'stats-password');
      return [/^\s*stats socket (\S+) mode 600/m.exec(cfg)?.[1], v];
    },
  },
  'sshd/sshd_config.eta': {
    format: 'word',
    roundTrip: (v) => {
      const cfg = renderSshdConfig({ addresses: ['127.0.0.10'], port: 2222, files: { hostKey: v, pidFile: `${v}.pid`, authorizedKeys: `${v}.keys` } as never });
      return [[/^HostKey (\S+)$/m.exec(cfg)?.[1], /^PidFile (\S+)$/m.exec(cfg)?.[1]], [v, `${v}.pid`]];
    },
  },
  'pgbackrest/pgbackrest.conf.eta': {
    format: 'word',
    roundTrip: (v, inv) => {
      const conf = renderPgbackrestConf({ ...inv, backup: { ...inv.backup, repo_path: v } }, ctl(inv), 'passphrase-0123456789');
      return [parseIni(conf)['global']!['repo1-path'], v];
    },
  },
  'pgbackrest/scheduled-backup.sh.eta': {
    format: 'sh',
    roundTrip: (v, inv, p) => [shWord(/^state=([\s\S]*?)\numask 077\n/m.exec(renderScheduledBackup(inv, { paths: { ...p, backupState: v } }))?.[1] ?? ''), v],
  },
  'pgbackrest/schedule-loop.sh.eta': {
    format: 'sh',
    roundTrip: (v) => [shWord(/^while :; do\n {2}([\s\S]*?) \|\| true\n {2}sleep 60 &\n/m.exec(renderScheduleLoop(v, 60))?.[1] ?? ''), v],
  },
  'pgbackrest/dpgc-pgbackrest-backup.service.eta': {
    format: 'systemd',
    roundTrip: (v, inv, p) => {
      const unit = renderTimerUnits(inv, { paths: { ...p, libexecDir: v } }).service;
      const quoted = /^ExecStart="((?:[^"\\]|\\.)*)"$/m.exec(unit)?.[1];
      return [quoted?.replace(/\\(.)/g, '$1').replace(/%%/g, '%'), `${v}/pgbackrest-scheduled-backup`];
    },
  },
  'pgbackrest/dpgc-pgbackrest-backup.timer.eta': {
    format: 'word',
    roundTrip: (v, inv, p) => [/^OnCalendar=(.*)$/m.exec(renderTimerUnits({ ...inv, backup: { ...inv.backup, schedule: v } }, { paths: p }).timer)?.[1], v],
  },
  'nftables/firewall.nft.eta': {
    format: 'word',
    roundTrip: (v, inv) => {
      const fw = firewallFor({ ...inv, lab: false, network: { allowed_cidrs: [v] } }, db1(inv));
      return [/^\s*elements = \{ (.*) \}$/m.exec(renderFirewall(fw))?.[1], v];
    },
  },
  'nftables/dpgc-firewall.service.eta': {
    format: 'systemd',
    roundTrip: (v) => {
      const unit = renderFirewallUnit({ cluster: 'main', table: 'dpgc_fw_main_10_0_0_11' }, v);
      const quoted = /^ExecStart=\/usr\/sbin\/nft -f "((?:[^"\\]|\\.)*)"$/m.exec(unit)?.[1];
      return [quoted?.replace(/\\(.)/g, '$1').replace(/%%/g, '%'), v];
    },
  },
  'systemd/dpgc.service.eta': {
    format: 'systemd',
    roundTrip: (v) => {
      const unit = renderSystemdUnit({ name: 'patroni', user: 'postgres', argv: ['patroni'], env: { DPGC_X: v } });
      // systemd's reading of a double-quoted Environment= word: C escapes, then %% is one %.
      const quoted = /^Environment="((?:[^"\\]|\\.)*)"$/m.exec(unit)?.[1];
      return [quoted?.replace(/\\(.)/g, '$1').replace(/%%/g, '%'), `DPGC_X=${v}`];
    },
  },
};

function etaTemplates(dir = TEMPLATES_DIR): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return etaTemplates(p);
    return p.endsWith('.eta') ? [relative(TEMPLATES_DIR, p)] : [];
  });
}

/** Renders; a refusal must be a ConfigError (exit 3 with a message), never a broken file. */
function attempt(c: Case, v: string, inv: Inventory): { refused: true } | { refused: false; got: unknown; want: unknown } {
  try {
    const [got, want] = c.roundTrip(v, inv, pathsOf(inv));
    return { refused: false, got, want };
  } catch (e) {
    if (e instanceof ConfigError) return { refused: true };
    throw e;
  }
}

const HOSTILE = [
  "/srv/it's",
  '/srv/$(touch /tmp/dpgc-hostile-ran)',
  '/srv/`touch /tmp/dpgc-hostile-ran`',
  '/srv/a;touch /tmp/dpgc-hostile-ran',
  '/srv/a\ntouch /tmp/dpgc-hostile-ran',
  '/srv/"dq"',
  '/srv/back\\slash\\',
  '/srv/# not a comment',
  ' /srv/lead and trail ',
  "'; DROP TABLE x; --",
  '/srv/${HOME}/%(asctime)s/{{x}}',
  'key: value',
  '- [a, b]',
  'off',
  '/srv/ünïcode/\u00e9',
  '/srv/a\r\nb',
  '/srv/a\u2028b',
  '/srv/del\u007f',
];
const HAS_CONTROL = /[\p{C}\p{Zl}\p{Zp}]/u;

describe('every template, with hostile values put straight into its renderer', () => {
  const inv = labInv();

  it('each template under templates/ has a case here (a new one needs its own)', () => {
    expect(etaTemplates().sort()).toEqual(Object.keys(CASES).sort());
  });

  describe.each(Object.entries(CASES))('%s', (_name, c) => {
    it.each(HOSTILE.map((v) => [JSON.stringify(v), v]))('%s reads back exactly, or is refused', (_label, v) => {
      const r = attempt(c, v, inv);
      if (r.refused) {
        // Formats that can quote must quote, not refuse: only control characters may be refused there.
        if (c.format === 'sh' || c.format === 'yaml') throw new Error(`${_name} refused ${JSON.stringify(v)}, which its format can hold`);
        if (c.format === 'pgconf' || c.format === 'systemd') expect(HAS_CONTROL.test(v)).toBe(true);
        return;
      }
      expect(r.got).toEqual(r.want);
    });
  });
});

describe('the real readers agree', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dpgc-hostile-'));
  const marker = '/tmp/dpgc-hostile-ran';
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sh sources the etcd env file to exactly the values, running nothing', () => {
    const inv = labInv();
    rmSync(marker, { force: true });
    for (const v of HOSTILE) {
      const f = join(dir, 'etcd.env');
      writeFileSync(f, renderEtcdEnv(inv, db1(inv), { etcdData: v, tlsDir: v }, 'tls'));
      // The supervisor's way of reading it (src/hosts/services.ts): `set -a; . file`.
      const out = execFileSync('sh', ['-c', 'set -a; . "$1"; printf %s "$ETCD_DATA_DIR"', 'sh', f], { encoding: 'utf8' });
      expect(out).toBe(v);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('PyYAML (what Patroni uses) reads patroni.yml back to exactly the values', () => {
    const inv = labInv();
    const docs = HOSTILE.map((v) => renderPatroniConfig(inv, db1(inv), { ...pathsOf(inv), pgData: v }, creds));
    const f = join(dir, 'docs.json');
    writeFileSync(f, JSON.stringify(docs));
    const py = 'import sys,yaml,json; print(json.dumps([yaml.safe_load(d)["postgresql"]["data_dir"] for d in json.load(open(sys.argv[1]))]))';
    expect(JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, f], { encoding: 'utf8' }))).toEqual(HOSTILE);
  });
});

const PLAIN = 'abcxyzABZ019._-/';
const NASTY = ['\'', '"', '$', '`', ';', '\n', '\t', '\\', ' ', '#', '%', '(', ')', '{', '}', '[', ']', '<', '>', '|', '&', '*', '?', '!', '=', ':', ',', '@', '~', 'é', '\u2028', '\u0000', '\u007f', '..', '//', '~/'];

function randomString(rand: () => number): string {
  const len = 1 + Math.floor(rand() * 16);
  let s = rand() < 0.6 ? '/' : '';
  for (let i = 0; i < len; i++) {
    s += rand() < 0.85 ? PLAIN[Math.floor(rand() * PLAIN.length)] : NASTY[Math.floor(rand() * NASTY.length)];
  }
  return s;
}

const BASE = {
  cluster: 'main',
  hosts: [
    { name: 'ctl', address: '127.0.0.10', roles: ['haproxy', 'pgbouncer', 'monitoring', 'backup'] },
    { name: 'db1', address: '127.0.0.11', roles: ['postgres', 'etcd'] },
    { name: 'db2', address: '127.0.0.12', roles: ['postgres', 'etcd'] },
    { name: 'db3', address: '127.0.0.13', roles: ['postgres', 'etcd'] },
  ],
};
function accepted(over: Record<string, unknown>): Inventory | undefined {
  return parseInventory(stringify({ ...BASE, ...over }), '/x/dpgc.yaml').inventory;
}

describe('property: whatever the schema accepts renders and reads back exactly', () => {
  const SEED = 20261202;
  const N = 400;

  it(`host roots (seed ${SEED}, ${N} strings): every template built from the root's paths`, () => {
    const rand = mulberry32(SEED);
    let ok = 0;
    for (let i = 0; i < N; i++) {
      const s = randomString(rand);
      const inv = accepted({ defaults: { root: s } });
      if (!inv) continue;
      ok++;
      expect(s, 'an accepted root is absolute, normalised, plain').toMatch(/^(\/[A-Za-z0-9._-]+)+$/);
      expect(posix.normalize(s)).toBe(s);
      expect(s.split('/')).not.toContain('..');
      const p = pathsOf(inv);
      expect(parseShEnv(renderEtcdEnv(inv, db1(inv), p)).ETCD_DATA_DIR).toBe(p.etcdData);
      expect(parsePgConf(renderDpgcConf(inv, db1(inv), p))['unix_socket_directories']).toBe(p.pgSocketDir);
      expect(parse(renderPatroniConfig(inv, db1(inv), p, creds), { version: '1.1' }).postgresql.data_dir).toBe(p.pgData);
      const c = pathsOf(inv, 'ctl');
      expect(parse(renderPrometheusYml(inv, c, 3)).rule_files[0]).toBe(`${c.prometheusDir}/rules/postgres.yml`);
      expect(parse(renderDashboardProvider(c)).providers[0].options.path).toBe(c.grafanaDashboards);
      expect(parseIni(renderPgbouncerIni(inv, ctl(inv), c, baseInstanceBackends(inv)))['pgbouncer']!['unix_socket_dir']).toBe(c.pgSocketDir);
      expect(/^\s*stats socket (\S+) /m.exec(renderHaproxyConfig(inv, ctl(inv), c, 'stats-password'))?.[1]).toBe(c.haproxySocket);
    }
    // Not vacuous: a good share of the strings were plain enough to be accepted.
    expect(ok).toBeGreaterThan(N / 10);
  });

  it(`postgres.settings names and values (seed ${SEED + 1}): postgresql.conf reads back exactly`, () => {
    const rand = mulberry32(SEED + 1);
    let values = 0;
    let names = 0;
    for (let i = 0; i < N; i++) {
      const s = randomString(rand).replace(/^\//, rand() < 0.5 ? '' : '/');
      const v = accepted({ postgres: { settings: { application_name: s } } });
      if (v) {
        values++;
        expect(parsePgConf(renderDpgcConf(v, db1(v), pathsOf(v)))['application_name']).toBe(s);
      }
      const lower = s.toLowerCase();
      const n = accepted({ postgres: { settings: { [lower]: 'x' } } });
      if (n) {
        names++;
        expect(lower).toMatch(/^[a-z_][a-z0-9_.]*$/);
        expect(parsePgConf(renderDpgcConf(n, db1(n), pathsOf(n)))[lower]).toBe('x');
      }
    }
    expect(values).toBeGreaterThan(N / 4);
    expect(names).toBeGreaterThan(0);
  });

  it(`ssh user, key, known_hosts, image and backup.repo_path (seed ${SEED + 2}): accepted values are plain`, () => {
    const rand = mulberry32(SEED + 2);
    const seen = { user: 0, key: 0, image: 0, repo: 0 };
    for (let i = 0; i < N; i++) {
      const s = randomString(rand);
      const user = s.replace(/^\//, '').toLowerCase();
      if (accepted({ defaults: { ssh: { user } } })) {
        seen.user++;
        expect(user).toMatch(/^[a-z_][a-z0-9_-]{0,31}$/);
        expect(shWord(user)).toBe(user);
      }
      const key = rand() < 0.3 ? `~${s}` : s;
      if (accepted({ defaults: { ssh: { key, known_hosts: key } } })) {
        seen.key++;
        expect(key.replace(/^~\//, '/')).toMatch(/^(\/[A-Za-z0-9._-]+)+$/);
      }
      const image = `${user}:${s.length}`;
      if (accepted({ postgres: { ruvector_image: image } })) {
        seen.image++;
        expect(image).toMatch(/^[a-z0-9][A-Za-z0-9._/:@-]*$/);
      }
      if (accepted({ backup: { repo_path: s } })) {
        seen.repo++;
        expect(s).toMatch(/^(\/[A-Za-z0-9._-]+)+$/);
        expect(posix.normalize(s)).toBe(s);
      }
    }
    for (const [field, n] of Object.entries(seen)) expect(n, `${field}: some accepted`).toBeGreaterThan(0);
  });
});
