import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { clientSocketsOf, hostPartitionRules, labPartitionRules } from '../../src/drills/partition.js';

const nftAvailable = (() => {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
})();

describe('partition rules', () => {
  it('lab: marks what the victim sends and drops what crosses the boundary', () => {
    const r = labPartitionRules({ table: 'dpgc_part_x', cgroup: 'unified/dpgc_part_x', address: '127.0.40.11' });
    expect(r).toContain('socket cgroupv2 level 1 "unified/dpgc_part_x" meta mark set 0x64706763');
    expect(r).toContain('ip saddr 127.0.40.11 meta mark set 0x64706763');
    expect(r).toContain('meta mark 0x64706763 ip daddr 127.0.40.11 accept');
    expect(r).toContain('ip daddr 127.0.40.11 counter drop');
  });

  it.skipIf(!nftAvailable)('real hosts: nft accepts the rules (check mode)', () => {
    const r = hostPartitionRules({ table: 'dpgc_part_check', peers: ['10.0.0.12', '10.0.0.13'], sshPort: 22 });
    expect(r).toContain('ip daddr { 10.0.0.12, 10.0.0.13 } counter drop');
    expect(() => execFileSync('nft', ['-c', '-f', '-'], { input: r })).not.toThrow();
  });
});

describe('clientSocketsOf', () => {
  const ss = [
    'ESTAB 0 0 127.0.0.1:51234 127.0.40.12:2379 users:(("patroni",pid=100,fd=7))',
    'ESTAB 0 0 127.0.40.11:5432 127.0.0.1:40000 users:(("postgres",pid=101,fd=9))',
    'ESTAB 0 0 127.0.0.1:51300 127.0.40.13:2380 users:(("etcd",pid=300,fd=12))',
    'ESTAB 0 0 127.0.0.1:51301 127.0.40.12:2380 users:(("etcd",pid=102,fd=12),("etcd",pid=102,fd=13))',
  ].join('\n');

  it('reads the state-filtered form too (no State column)', () => {
    const filtered = '0 0 127.0.0.1:51234 127.0.40.12:2379 users:(("patroni",pid=100,fd=7))\n0 0 127.0.40.11:5432 127.0.0.1:40000 users:(("postgres",pid=101,fd=9))';
    expect(clientSocketsOf(filtered, new Set([100, 101]), '127.0.40.11')).toEqual([{ local: '127.0.0.1:51234', peer: '127.0.40.12:2379' }]);
  });

  it('lists the victim processes\' client sockets, not their listeners\' connections or other processes', () => {
    expect(clientSocketsOf(ss, new Set([100, 101, 102]), '127.0.40.11')).toEqual([
      { local: '127.0.0.1:51234', peer: '127.0.40.12:2379' },
      { local: '127.0.0.1:51301', peer: '127.0.40.12:2380' },
    ]);
  });
});
