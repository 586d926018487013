import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { silences, unrouted, type AlertRule, type Silence } from '../../src/checks/alerting.js';
import { alertmanagerFiles, alertmanagerService, labReceiverService, needsSecret, renderAlertmanagerYml } from '../../src/components/alertmanager.js';
import { renderPrometheusYml } from '../../src/components/prometheus.js';
import { matcherProblem } from '../../src/config/alerting.js';
import { parseInventory } from '../../src/config/load.js';
import { hostPaths } from '../../src/config/paths.js';
import { Secrets } from '../../src/config/secrets.js';
import { labInv } from '../helpers/lab-inventory.js';

/**
 * Alert routing (issue 15): the inventory's `alerting:` section, validated
 * with errors an operator can act on; Alertmanager's config rendered from it
 * and accepted by Alertmanager's own amtool; the pure verdicts of the routing
 * and silence checks.
 */

const HOSTS = `hosts:
  - { name: db1, address: 10.0.1.11, roles: [postgres, etcd, monitoring, pgbouncer, haproxy, backup] }
  - { name: db2, address: 10.0.1.12, roles: [postgres, etcd] }
  - { name: db3, address: 10.0.1.13, roles: [postgres, etcd] }
`;
const FULL = `cluster: orders
alerting:
  receiver: oncall
  receivers:
    - name: oncall
      webhook: { url: https://hooks.example.com/dpgc, token: true }
    - name: dba_mail
      email: { to: dba@example.com, from: dpgc@example.com, smarthost: smtp.example.com:587, username: dpgc }
    - name: chat
      slack: { channel: '#db-alerts' }
    - name: plain_hook
      webhook: { url: http://10.0.1.50:8080/alerts }
      send_resolved: false
  routes:
    - { receiver: dba_mail, matchers: ['severity="critical"'], continue: true }
    - { receiver: chat, matchers: ['alertname=~"Postgres.*"', 'severity!=info'] }
  group_wait: 10s
${HOSTS}`;

const messages = (text: string) => parseInventory(text, '/etc/dpgc/dpgc.yaml').issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);

describe('the alerting section of the inventory', () => {
  it('accepts every receiver kind, routes and timings; defaults leave alerts to nobody', () => {
    const r = parseInventory(FULL, '/etc/dpgc/dpgc.yaml');
    expect(r.issues).toEqual([]);
    expect(r.inventory!.alerting).toMatchObject({ receiver: 'oncall', group_wait: '10s', group_interval: '5m', repeat_interval: '4h', group_by: ['alertname', 'cluster'] });
    expect(r.inventory!.ports.alertmanager).toBe(9093);
    const bare = parseInventory(`cluster: orders\n${HOSTS}`, '/x.yaml').inventory!;
    expect(bare.alerting).toMatchObject({ receivers: [], routes: [] });
    expect(bare.alerting.receiver).toBeUndefined();
  });

  it.each([
    ['a receiver with two kinds', `  receiver: a\n  receivers:\n    - { name: a, webhook: { url: http://x.example/ }, slack: {} }\n`, /receiver a has webhook and slack; give each receiver exactly one/],
    ['a receiver with none', `  receiver: a\n  receivers:\n    - { name: a }\n`, /receiver a has no webhook, email or slack: give it exactly one, or remove it/],
    ['a default receiver that does not exist', `  receiver: oncal\n  receivers:\n    - { name: oncall, webhook: { url: http://x.example/ } }\n`, /alerting\.receiver: no receiver is named "oncal"; did you mean "oncall"\?/],
    ['a route to a missing receiver', `  receiver: a\n  receivers:\n    - { name: a, webhook: { url: http://x.example/ } }\n  routes:\n    - { receiver: b, matchers: [severity=critical] }\n`, /alerting\.routes\[0\]\.receiver: no receiver is named "b"/],
    ['receivers nobody sends to', `  receivers:\n    - { name: a, webhook: { url: http://x.example/ } }\n`, /no alert would reach a: set alerting\.receiver/],
    ['a duplicate receiver', `  receiver: a\n  receivers:\n    - { name: a, webhook: { url: http://x.example/ } }\n    - { name: a, slack: {} }\n`, /receiver name "a" is already used by alerting\.receivers\[0\]/],
    ['the reserved name', `  receiver: nobody\n  receivers:\n    - { name: nobody, webhook: { url: http://x.example/ } }\n`, /"nobody" is dpgc's own/],
    ['a dash in a name', `  receiver: on-call\n  receivers:\n    - { name: on-call, webhook: { url: http://x.example/ } }\n`, /expected a receiver name of lowercase letters, digits and _/],
    ['a file: URL', `  receiver: a\n  receivers:\n    - { name: a, webhook: { url: 'file:///etc/shadow' } }\n`, /expected an http:\/\/ or https:\/\/ URL/],
    ['a bad e-mail address', `  receiver: a\n  receivers:\n    - { name: a, email: { to: 'dba at example', from: a@b.example, smarthost: smtp.example.com:25 } }\n`, /expected one e-mail address/],
    ['a smarthost without port', `  receiver: a\n  receivers:\n    - { name: a, email: { to: a@b.example, from: a@b.example, smarthost: smtp.example.com } }\n`, /expected host:port of an SMTP relay/],
    ['a bad matcher', `  receiver: a\n  receivers:\n    - { name: a, webhook: { url: http://x.example/ } }\n  routes:\n    - { receiver: a, matchers: ['severity: critical'] }\n`, /expected a matcher such as severity="critical"/],
    ['a bad duration', `  group_wait: 30 seconds\n`, /expected a duration such as 30s, 5m or 4h/],
    ['a zero duration', `  repeat_interval: 0s\n`, /expected a duration above zero/],
    ['the lab receiver off the lab', `  lab_receiver: { port: 9095 }\n`, /alerting\.lab_receiver is for the lab only/],
    ['the lab receiver on a taken port', `  lab_receiver: { port: 9090 }\n`, /port 9090 is already used by prometheus on the monitoring host/],
  ])('refuses %s, naming the field', (_what, section, want) => {
    const m = messages(`cluster: orders\nalerting:\n${section}${HOSTS}`);
    expect(m.join('\n')).toMatch(want);
    // Every problem points at a line of the file.
    for (const l of m) expect(l).toMatch(/^\d+:\d+ /);
  });

  it('checks regular expressions in matchers, and quoted values with spaces', () => {
    expect(matcherProblem('alertname=~"Postgres(.*"')).toMatch(/does not compile/);
    expect(matcherProblem('summary="a, b and c"')).toBeUndefined();
    expect(matcherProblem('severity!~warning|info')).toBeUndefined();
    expect(matcherProblem('severity="a\nb"')).toMatch(/control character/);
  });
});

describe('receiver credentials in the secrets file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dpgc-alert-secrets-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads receiver_<name> of any length, and never generates one', async () => {
    const file = join(dir, 'a.secrets.yaml');
    writeFileSync(file, 'receiver_dba_mail: short\n', { mode: 0o600 });
    const s = new Secrets(file, { env: {} });
    expect(await s.get('receiver_dba_mail')).toBe('short');
    await expect(s.get('receiver_chat')).rejects.toThrow(/alert receiver chat needs its credential, and neither .* has "receiver_chat" nor is DPGC_SECRET_RECEIVER_CHAT set/);
    // Nothing was generated into the file.
    expect(parse(execFileSync('cat', [file], { encoding: 'utf8' }))).toEqual({ receiver_dba_mail: 'short' });
  });

  it('takes DPGC_SECRET_RECEIVER_<NAME> from the environment', async () => {
    const s = new Secrets(join(dir, 'none.secrets.yaml'), { env: { DPGC_SECRET_RECEIVER_CHAT: 'https://hooks.slack.example/T/B/x' } });
    expect(await s.get('receiver_chat')).toBe('https://hooks.slack.example/T/B/x');
  });
});

describe('Alertmanager config rendered from the inventory', () => {
  const inv = parseInventory(FULL, '/etc/dpgc/dpgc.yaml').inventory!;
  const db1 = inv.hosts[0]!;
  const paths = hostPaths(inv, db1);
  const yml = renderAlertmanagerYml(inv, paths);
  const cfg = parse(yml);
  const f = alertmanagerFiles(paths);

  it('routes and receivers as the inventory says; credentials only as files', () => {
    expect(cfg.route).toMatchObject({ receiver: 'oncall', group_wait: '10s', group_interval: '5m', repeat_interval: '4h', group_by: ['alertname', 'cluster'] });
    expect(cfg.route.routes).toEqual([
      { receiver: 'dba_mail', matchers: ['severity="critical"'], continue: true },
      { receiver: 'chat', matchers: ['alertname=~"Postgres.*"', 'severity!=info'], continue: false },
    ]);
    const by = Object.fromEntries(cfg.receivers.map((r: { name: string }) => [r.name, r]));
    expect(by.oncall.webhook_configs[0]).toEqual({ url: 'https://hooks.example.com/dpgc', send_resolved: true, http_config: { authorization: { type: 'Bearer', credentials_file: f.secret('oncall') } } });
    expect(by.dba_mail.email_configs[0]).toMatchObject({ to: 'dba@example.com', auth_username: 'dpgc', auth_password_file: f.secret('dba_mail'), require_tls: true });
    expect(by.chat.slack_configs[0]).toEqual({ api_url_file: f.secret('chat'), send_resolved: true, channel: '#db-alerts' });
    expect(by.plain_hook.webhook_configs[0]).toEqual({ url: 'http://10.0.1.50:8080/alerts', send_resolved: false });
    expect(inv.alerting.receivers.filter(needsSecret).map((r) => r.name)).toEqual(['oncall', 'dba_mail', 'chat']);
    expect(cfg.receivers.map((r: { name: string }) => r.name)).not.toContain('nobody');
  });

  it('without a default receiver, the root goes to "nobody", a receiver with no integration', () => {
    const c = parse(renderAlertmanagerYml({ ...inv, alerting: { ...inv.alerting, receiver: undefined } }, paths));
    expect(c.route.receiver).toBe('nobody');
    expect(c.receivers.at(-1)).toEqual({ name: 'nobody' });
  });

  it.skipIf(!existsSync('/usr/bin/amtool'))('is accepted by amtool check-config (Alertmanager 0.25 reads every *_file setting used)', () => {
    const d = mkdtempSync(join(tmpdir(), 'dpgc-am-'));
    try {
      const file = join(d, 'alertmanager.yml');
      writeFileSync(file, yml);
      expect(execFileSync('amtool', ['check-config', file], { encoding: 'utf8' })).toMatch(/SUCCESS[\s\S]*4 receivers/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('runs as prometheus on the host address with gossip off; Prometheus sends to it', () => {
    const spec = alertmanagerService(inv, { spec: db1, paths });
    expect(spec).toMatchObject({ user: 'prometheus', listen: { address: '10.0.1.11', port: 9093 } });
    expect(spec.argv).toContain('--cluster.listen-address=');
    expect(spec.argv).toContain('--web.listen-address=10.0.1.11:9093');
    expect(parse(renderPrometheusYml(inv, paths, 1)).alerting).toEqual({ alertmanagers: [{ static_configs: [{ targets: ['10.0.1.11:9093'] }] }] });
  });

  it('the lab inventory sends everything to the lab receiver, which dpgc runs', () => {
    const lab = labInv();
    const ctl = lab.hosts.find((h) => h.name === 'ctl')!;
    expect(lab.alerting).toMatchObject({ receiver: 'lab', receivers: [{ name: 'lab', webhook: { url: 'http://127.0.30.10:9095/alerts' } }], lab_receiver: { port: 9095 } });
    const spec = labReceiverService(lab, { spec: ctl, paths: hostPaths(lab, ctl) })!;
    expect(spec.argv.slice(2)).toEqual(['127.0.30.10', '9095', '/lab/ctl/var/lib/dpgc/lab-alerts/notifications.jsonl']);
    expect(labReceiverService(inv, { spec: db1, paths })).toBeUndefined();
    // The lab receiver takes no credential: nothing to keep in the secrets file.
    expect(lab.alerting.receivers.filter(needsSecret)).toEqual([]);
  });
});

describe('routing and silence verdicts', () => {
  const rule = (name: string, severity: string): AlertRule => ({ name, labels: { cluster: 'c', severity, alertname: name } });
  const receivers = [
    { name: 'lab', integrations: ['webhook'] },
    { name: 'nobody', integrations: [] },
  ];

  it('a rule is routed when one of its receivers notifies someone', () => {
    const rules = [
      { ...rule('TargetDown', 'critical'), to: ['nobody'] },
      { ...rule('DiskSpaceLow', 'warning'), to: ['lab'] },
      { ...rule('Both', 'warning'), to: ['nobody', 'lab'] },
      { ...rule('Gone', 'info'), to: ['removed'] },
    ];
    expect(unrouted(rules, receivers)).toEqual([
      'TargetDown (severity=critical) → nobody (a receiver with no webhook, email or slack: no route matches it, and alerting.receiver is not set)',
      'Gone (severity=info) → removed (a receiver with no webhook, email or slack: it notifies nobody)',
    ]);
  });

  it('a silence mutes a rule only when its matchers are all decided by the rule’s own labels', () => {
    const s = (matchers: Silence['matchers'], state = 'active'): Silence => ({ id: 'x', status: { state }, matchers, createdBy: 'sre', comment: 'c', endsAt: '' });
    const r = rule('PostgresDown', 'critical');
    expect(silences(r, s([{ name: 'alertname', value: 'PostgresDown', isRegex: false, isEqual: true }]))).toBe(true);
    expect(silences(r, s([{ name: 'alertname', value: 'Postgres.*', isRegex: true, isEqual: true }]))).toBe(true);
    expect(silences(r, s([{ name: 'alertname', value: 'PostgresDown', isRegex: false }], 'expired'))).toBe(false);
    expect(silences(r, s([{ name: 'severity', value: 'warning', isRegex: false, isEqual: false }]))).toBe(true);
    // One instance silenced: the rule still alerts for the others.
    expect(silences(r, s([{ name: 'alertname', value: 'PostgresDown', isRegex: false }, { name: 'instance', value: 'db1:9187', isRegex: false }]))).toBe(false);
  });
});
