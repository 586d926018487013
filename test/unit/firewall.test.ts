import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { activeFirewallManager, admits, SSH_SESSION_SCRIPT, firewallFor, firewallTable, refuseLockout, renderFirewall, renderFirewallUnit, tableDifferences, type Firewall } from '../../src/components/firewall.js';
import { parseInventory } from '../../src/config/load.js';
import type { Inventory } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { labInv } from '../helpers/lab-inventory.js';

/** Four real hosts: ctl (HAProxy, PgBouncer, monitoring, backup) and three database hosts, applications on 10.0.0.0/16. */
function realInv(extra = ''): Inventory {
  const yaml = `cluster: orders
network:
  allowed_cidrs: [10.0.0.0/16]
hosts:
  - { name: ctl, address: 10.0.1.10, roles: [haproxy, pgbouncer, monitoring, backup] }
  - { name: db1, address: 10.0.1.11, roles: [postgres, etcd] }
  - { name: db2, address: 10.0.1.12, roles: [postgres, etcd] }
  - { name: db3, address: 10.0.1.13, roles: [postgres, etcd] }
${extra}`;
  const r = parseInventory(yaml, '/srv/dpgc.yaml');
  if (!r.inventory) throw new Error(JSON.stringify(r.issues));
  return r.inventory;
}
const host = (inv: Inventory, name: string) => inv.hosts.find((h) => h.name === name)!;
const fwOf = (inv: Inventory, name: string): Firewall => firewallFor(inv, host(inv, name));
const ports = (fw: Firewall) => fw.rules.map((r) => `${r.service}:${r.port}`);

const dir = mkdtempSync(join(tmpdir(), 'dpgc-nft-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `nft -c -f`: nftables itself checks the rendered file, without loading it. */
function nftCheck(text: string): string {
  const f = join(dir, 'firewall.nft');
  writeFileSync(f, text);
  return execFileSync('nft', ['-c', '-f', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** What nftables makes of the file: loaded in a network namespace of its own (gone when the command ends), then listed. */
function nftListing(text: string, table: string): string {
  return execFileSync('unshare', ['--net', 'sh', '-c', 'nft -f - && nft -s list table inet "$1"', 'sh', table], { input: text, encoding: 'utf8' });
}

describe('firewallFor: the ports each host’s roles need, from the addresses that need them', () => {
  const inv = realInv();

  it('a database host: ssh, PostgreSQL, Patroni, etcd, the exporters, mtail and pgBackRest’s server, nothing else', () => {
    expect(ports(fwOf(inv, 'db1'))).toEqual(['ssh:22', 'node_exporter:9100', 'postgres:5432', 'patroni:8008', 'postgres_exporter:9187', 'pgbackrest:8432', 'mtail:3903', 'etcd_client:2379', 'etcd_peer:2380']);
  });

  it('the control host: ssh, HAProxy, PgBouncer, monitoring and the repository’s server and scratch restore', () => {
    expect(ports(fwOf(inv, 'ctl'))).toEqual([
      'ssh:22', 'node_exporter:9100', 'haproxy_primary:5000', 'haproxy_replicas:5001', 'haproxy_stats:8404', 'pgbouncer:6432', 'pgbouncer_exporter:9127',
      'prometheus:9090', 'grafana:3000', 'alertmanager:9093', 'pgbackrest:8432', 'restore_scratch:5439',
    ]);
  });

  it('etcd’s peer port admits the etcd members only; pgBackRest’s servers admit the repository host and the database hosts only', () => {
    const db1 = fwOf(inv, 'db1');
    expect(db1.rules.find((r) => r.service === 'etcd_peer')?.from).toEqual(['10.0.1.11', '10.0.1.12', '10.0.1.13']);
    expect(db1.rules.find((r) => r.service === 'pgbackrest')?.from).toEqual(['10.0.1.11', '10.0.1.10']);
    expect(fwOf(inv, 'ctl').rules.find((r) => r.service === 'pgbackrest')?.from).toEqual(['10.0.1.10', '10.0.1.11', '10.0.1.12', '10.0.1.13']);
  });

  it('mtail (plaintext, no auth) admits the monitoring host only', () => {
    expect(fwOf(inv, 'db1').rules.find((r) => r.service === 'mtail')?.from).toEqual(['10.0.1.11', '10.0.1.10']);
  });

  it('every other port admits network.allowed_cidrs (applications and dpgc), SSH included', () => {
    const db1 = fwOf(inv, 'db1');
    expect(db1.clients).toEqual(['10.0.0.0/16']);
    for (const s of ['ssh', 'postgres', 'patroni', 'etcd_client', 'node_exporter']) expect(db1.rules.find((r) => r.service === s)?.from, s).toBe('clients');
  });

  it('follows the inventory’s ports and SSH port', () => {
    const fw = fwOf(realInv('ports: { postgres: 6543 }\ndefaults: { ssh: { port: 2022 } }'), 'db2');
    expect(ports(fw)).toContain('postgres:6543');
    expect(ports(fw)[0]).toBe('ssh:2022');
  });

  it('a table per host whose name carries the address: every lab is dpgc-lab, all on this one machine', () => {
    expect(firewallTable({ cluster: 'dpgc-lab' }, { address: '127.0.30.11' })).toBe('dpgc_fw_dpgc_lab_127_0_30_11');
    expect(new Set(labInv().hosts.map((h) => firewallTable(labInv(), h))).size).toBe(4);
  });

  it('the lab’s monitoring host also takes the lab alert receiver’s posts', () => {
    expect(ports(fwOf(labInv(), 'ctl'))).toContain('lab_receiver:9095');
  });
});

describe('admits: what the rules let in', () => {
  const db1 = fwOf(realInv(), 'db1');

  it('SSH and PostgreSQL from allowed_cidrs, not from elsewhere', () => {
    expect(admits(db1, { source: '10.0.7.7', dest: '10.0.1.11', port: 22 })).toBe(true);
    expect(admits(db1, { source: '10.0.7.7', dest: '10.0.1.11', port: 5432 })).toBe(true);
    expect(admits(db1, { source: '192.168.1.5', dest: '10.0.1.11', port: 22 })).toBe(false);
    expect(admits(db1, { source: '::ffff:10.0.7.7', dest: '10.0.1.11', port: 22 })).toBe(true);
    expect(admits(db1, { source: '2001:db8::1', dest: '2001:db8::2', port: 22 })).toBe(false);
  });

  it('etcd’s peer port from the etcd members only, a port no role needs from nobody, loopback always', () => {
    expect(admits(db1, { source: '10.0.1.12', dest: '10.0.1.11', port: 2380 })).toBe(true);
    expect(admits(db1, { source: '10.0.1.10', dest: '10.0.1.11', port: 2380 })).toBe(false);
    expect(admits(db1, { source: '10.0.1.10', dest: '10.0.1.11', port: 3306 })).toBe(false);
    expect(admits(db1, { source: '127.0.0.1', dest: '127.0.0.1', port: 3306 })).toBe(true);
  });

  it('the lab: only its own address is filtered, by port, from any source', () => {
    const lab = fwOf(labInv(), 'db1');
    expect(admits(lab, { source: '127.0.0.1', dest: '127.0.30.11', port: 5432 })).toBe(true);
    expect(admits(lab, { source: '127.0.0.1', dest: '127.0.30.11', port: 40000 })).toBe(false);
    expect(admits(lab, { source: '127.0.0.1', dest: '127.0.30.12', port: 40000 })).toBe(true);
  });
});

describe('refuseLockout: never lock dpgc out', () => {
  const inv = realInv();
  const db1 = fwOf(inv, 'db1');

  it('refuses, naming the inventory, the address and what to add, when dpgc’s own SSH session would not get back in', () => {
    let e: unknown;
    try {
      refuseLockout(inv, db1, { source: '192.168.1.5', dest: '10.0.1.11', port: 22 });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toContain('/srv/dpgc.yaml: the firewall rendered for db1 would refuse new SSH connections from 192.168.1.5');
    expect((e as ConfigError).hint).toContain('Add 192.168.1.5/32 (or its network) to network.allowed_cidrs');
  });

  it('lets it through from allowed_cidrs, and without an SSH session (the local transport)', () => {
    expect(() => refuseLockout(inv, db1, { source: '10.0.200.1', dest: '10.0.1.11', port: 22 })).not.toThrow();
    expect(() => refuseLockout(inv, db1, undefined)).not.toThrow();
  });
});

describe('the SSH session a host’s commands arrive through', () => {
  const session = '10.0.7.7 50022 10.0.1.11 22';

  it('is the command’s own SSH_CONNECTION', () => {
    expect(execFileSync('sh', ['-c', SSH_SESSION_SCRIPT], { env: { PATH: process.env['PATH']!, SSH_CONNECTION: session }, encoding: 'utf8' })).toBe(`${session}\n`);
  });

  it('or its nearest ancestor’s, when something between (sudo) dropped it from the command’s environment', () => {
    // The outer shell keeps the variable and waits (`; true`), the inner one runs without it.
    const out = execFileSync('sh', ['-c', 'env -u SSH_CONNECTION sh -c "$1"; true', 'sh', SSH_SESSION_SCRIPT], { env: { PATH: process.env['PATH']!, SSH_CONNECTION: session }, encoding: 'utf8' });
    expect(out).toBe(`${session}\n`);
  });
});

describe('renderFirewall', () => {
  it('real hosts: accepted by nft -c, default drop, established and loopback first, each port from its sources, other TCP reset', () => {
    const fw = fwOf(realInv(), 'db1');
    const text = renderFirewall(fw);
    expect(nftCheck(text)).toBe('');
    const listed = nftListing(text, fw.table);
    expect(listed).toContain('type filter hook input priority filter; policy drop;');
    expect(listed).toMatch(/ct state established,related accept\n\s+ct state invalid drop\n\s+iif "lo" ip daddr 127\.0\.0\.0\/8 accept/);
    expect(listed).toContain('elements = { 10.0.0.0/16 }');
    expect(listed).toContain('tcp dport 22 ip saddr @clients accept comment "ssh"');
    expect(listed).toContain('tcp dport 2380 ip saddr { 10.0.1.11, 10.0.1.12, 10.0.1.13 } accept comment "etcd_peer"');
    expect(listed).toMatch(/meta l4proto tcp counter reject with tcp reset comment "every other port"\n\s+counter comment "dropped"\n\s+}/);
  });

  it('replaces only its own table, atomically: one file that makes sure the table exists, deletes it and defines it', () => {
    const fw = fwOf(realInv(), 'db1');
    const lines = renderFirewall(fw).split('\n').filter((l) => /^(table|delete)/.test(l));
    expect(lines).toEqual([`table inet ${fw.table}`, `delete table inet ${fw.table}`, `table inet ${fw.table} {`]);
    expect(renderFirewall(fw)).not.toMatch(/flush ruleset/);
  });

  it('overlapping allowed_cidrs load (merged by nftables)', () => {
    const fw = fwOf({ ...realInv(), network: { allowed_cidrs: ['10.0.0.0/16', '10.0.1.0/24', '10.0.1.11/32'] } }, 'db1');
    expect(nftListing(renderFirewall(fw), fw.table)).toContain('elements = { 10.0.0.0/16 }');
  });

  it('the lab: accepted by nft -c, and only packets to the host’s own address are filtered', () => {
    const fw = fwOf(labInv(), 'db2');
    const text = renderFirewall(fw);
    expect(nftCheck(text)).toBe('');
    const listed = nftListing(text, fw.table);
    expect(listed).toContain('type filter hook input priority filter; policy accept;');
    expect(listed).toContain('ip daddr 127.0.30.12 jump lab_host');
    expect(listed).toContain('tcp dport 5432 accept comment "postgres"');
    expect(listed).not.toMatch(/policy drop|saddr/);
  });

  it('a boot unit that loads the file after Debian’s nftables.service', () => {
    const unit = renderFirewallUnit({ cluster: 'orders', table: 'dpgc_fw_orders_10_0_1_11' }, '/etc/dpgc/firewall.nft');
    expect(unit).toContain('After=nftables.service');
    expect(unit).toContain('ExecStart=/usr/sbin/nft -f "/etc/dpgc/firewall.nft"');
  });
});

describe('tableDifferences', () => {
  const wanted = 'table inet t {\n\tchain c {\n\t\ttcp dport 22 accept\n\t\ttcp dport 5432 accept\n\t}\n}\n';

  it('names a rule added by hand and a rule taken out', () => {
    const live = wanted.replace('\t\ttcp dport 5432 accept\n', '\t\ttcp dport 9999 accept\n');
    expect(tableDifferences(live, wanted)).toEqual(['missing: tcp dport 5432 accept', 'not rendered: tcp dport 9999 accept']);
  });

  it('counts a rule added twice, and says when only the order differs', () => {
    expect(tableDifferences(wanted.replace('\t\ttcp dport 22 accept\n', '\t\ttcp dport 22 accept\n\t\ttcp dport 22 accept\n'), wanted)).toEqual(['not rendered: tcp dport 22 accept']);
    expect(tableDifferences(wanted.replace('22', 'X').replace('5432', '22').replace('X', '5432'), wanted)).toEqual(['the same rules in another order']);
    expect(tableDifferences(wanted, wanted)).toEqual([]);
  });
});

describe('activeFirewallManager', () => {
  it('ufw when `ufw status` says active, firewalld when `firewall-cmd --state` says running, else none', () => {
    expect(activeFirewallManager('Status: active\n\nTo   Action  From\n')).toBe('ufw');
    expect(activeFirewallManager('Status: inactive\n')).toBeUndefined();
    expect(activeFirewallManager('running\n')).toBe('firewalld');
    expect(activeFirewallManager('not running\n')).toBeUndefined();
    expect(activeFirewallManager('')).toBeUndefined();
  });
});
