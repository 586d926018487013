import { describe, expect, it } from 'vitest';
import { clashes, parseDfAvailable, parseOsRelease, parseSsListeners, unsupportedOs } from '../../src/components/preflight.js';

const os = (id: string, versionId: string, pretty = `${id} ${versionId}`) => parseOsRelease(`ID=${id}\nVERSION_ID="${versionId}"\nPRETTY_NAME="${pretty}"\n`);

describe('preflight judgement', () => {
  it('accepts Debian 12+ and Ubuntu 22.04+, and refuses anything else by name', () => {
    expect(unsupportedOs(os('debian', '12'))).toBeUndefined();
    expect(unsupportedOs(os('debian', '13'))).toBeUndefined();
    expect(unsupportedOs(os('ubuntu', '22.04'))).toBeUndefined();
    expect(unsupportedOs(os('ubuntu', '24.04'))).toBeUndefined();
    expect(unsupportedOs(os('debian', '11', 'Debian GNU/Linux 11 (bullseye)'))).toMatch(/^Debian GNU\/Linux 11 \(bullseye\) is not supported/);
    expect(unsupportedOs(os('ubuntu', '20.04', 'Ubuntu 20.04.6 LTS'))).toMatch(/Ubuntu 20.04.6 LTS is not supported/);
    expect(unsupportedOs(os('rocky', '9', 'Rocky Linux 9.3'))).toMatch(/Rocky Linux 9.3 is not supported/);
    expect(unsupportedOs(parseOsRelease(''))).toMatch(/an unknown OS is not supported/);
  });

  it('parses ss listeners, with the process that holds each', () => {
    const ss = [
      'LISTEN 0      244        127.0.0.1:5432       0.0.0.0:*    users:(("postgres",pid=812,fd=6))',
      'LISTEN 0      5      127.0.10.11:5432       0.0.0.0:*    users:(("python3",pid=4242,fd=3))',
      'LISTEN 0      128             [::]:22            [::]:*    users:(("sshd",pid=1,fd=4))',
      'LISTEN 0      128                *:6432             *:*',
    ].join('\n');
    expect(parseSsListeners(ss)).toEqual([
      { address: '127.0.0.1', port: 5432, process: 'postgres', pid: 812 },
      { address: '127.0.10.11', port: 5432, process: 'python3', pid: 4242 },
      { address: '[::]', port: 22, process: 'sshd', pid: 1 },
      { address: '*', port: 6432 },
    ]);
  });

  it('counts only the same address or a wildcard as a clash (Debian on localhost:5432 does not block 127.0.10.11)', () => {
    const l = parseSsListeners(
      ['LISTEN 0 244 127.0.0.1:5432 0.0.0.0:* users:(("postgres",pid=812,fd=6))', 'LISTEN 0 5 0.0.0.0:6432 0.0.0.0:*', 'LISTEN 0 5 127.0.10.11:8008 0.0.0.0:*'].join('\n'),
    );
    expect(clashes(l, '127.0.10.11', 5432)).toEqual([]);
    expect(clashes(l, '127.0.0.1', 5432)).toHaveLength(1);
    expect(clashes(l, '127.0.10.11', 6432)).toHaveLength(1);
    expect(clashes(l, '127.0.10.11', 8008)).toHaveLength(1);
  });

  it('reads free space from df -Pk', () => {
    const df = 'Filesystem     1024-blocks      Used Available Capacity Mounted on\noverlay          102400000  40000000  62400000      40% /\n';
    expect(parseDfAvailable(df)).toBe(62400000 * 1024);
    expect(parseDfAvailable('garbage')).toBeUndefined();
  });
});
