import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostPaths } from '../../src/config/paths.js';
import { parseShowStat, renderHaproxyConfig, tlsCheckedIn, upServers } from '../../src/components/haproxy.js';
import { labInv } from '../helpers/lab-inventory.js';

function rendered(over = '', password = 'stats-Pw_123456') {
  const inv = labInv(over);
  const ctl = inv.hosts.find((h) => h.name === 'ctl')!;
  return renderHaproxyConfig(inv, ctl, hostPaths(inv, ctl), password);
}

/** `haproxy -c` is the judge of a rendered config. */
function haproxyCheck(text: string): { ok: boolean; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dpgc-haproxy-'));
  const f = join(dir, 'haproxy.cfg');
  writeFileSync(f, text);
  try {
    return { ok: true, out: execFileSync('haproxy', ['-c', '-f', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: string }).stderr) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('renderHaproxyConfig', () => {
  it('is accepted by haproxy -c', () => {
    const r = haproxyCheck(rendered());
    expect(r.out).toContain('Configuration file is valid');
    expect(r.ok).toBe(true);
  });

  it('routes :5000 by /primary and :5001 by /replica with a lag limit, checking Patroni on 8008', () => {
    const t = rendered();
    expect(t).toMatch(/listen primary\n\s+bind 127\.0\.30\.10:5000\n\s+retries 0\n\s+option httpchk OPTIONS \/primary\n/);
    expect(t).toMatch(/listen replicas\n\s+bind 127\.0\.30\.10:5001\n\s+balance roundrobin\n.*\n\s+option redispatch 1\n\s+option httpchk OPTIONS \/replica\?lag=1048576\n/);
    // A refused connection marks a server DOWN at once (a switchover's old primary), in both backends.
    expect(t.match(/observe layer4 error-limit 1 on-error mark-down\n/g)).toHaveLength(2);
    for (const [n, o] of [['db1', 11], ['db2', 12], ['db3', 13]] as const) expect(t).toContain(`server ${n} 127.0.30.${o}:5432 check port 8008`);
    expect(t.match(/on-marked-down shutdown-sessions/g)).toHaveLength(2);
  });

  it('takes check timings from the inventory profile', () => {
    expect(rendered()).toContain('inter 1000ms fastinter 250ms downinter 250ms fall 2 rise 1');
    expect(rendered('timings:\n  profile: safe\n')).toContain('inter 2000ms fastinter 500ms downinter 500ms fall 3 rise 2');
    expect(rendered('timings:\n  profile: safe\n')).toContain('timeout check 2000ms');
  });

  it('protects the stats page, serves Prometheus metrics, logs without /dev/log, and has an admin socket', () => {
    const t = rendered();
    expect(t).toContain('stats auth dpgc:stats-Pw_123456');
    expect(t).toContain('http-request use-service prometheus-exporter if { path /metrics }');
    expect(t).toContain('log stdout format iso local0 info');
    expect(t).not.toContain('/dev/log');
    expect(t).toContain('stats socket /lab/ctl/run/haproxy/admin.sock mode 600 level admin');
  });

  it("checks a member over TLS once its REST API serves it (the CA, the member's name), the others in plaintext; haproxy -c accepts it", () => {
    const inv = labInv();
    const ctl = inv.hosts.find((h) => h.name === 'ctl')!;
    const dir = mkdtempSync(join(tmpdir(), 'dpgc-haproxy-ca-'));
    try {
      // haproxy -c loads the CA file: any readable PEM certificate does for the syntax.
      const caFile = join(dir, 'ca.crt');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k'), '-subj', '/CN=t', '-days', '1', '-out', caFile], { stdio: 'ignore' });
      const t = renderHaproxyConfig(inv, ctl, hostPaths(inv, ctl), 'stats-Pw_123456', { tls: ['db2'], caFile });
      expect(t.match(new RegExp(`server db2 127\\.0\\.30\\.12:5432 check port 8008 check-ssl verify required ca-file ${caFile} check-sni db2 verifyhost db2\n`, 'g'))).toHaveLength(2);
      expect(t.match(/server db1 127\.0\.30\.11:5432 check port 8008\n/g)).toHaveLength(2);
      expect(tlsCheckedIn(t)).toEqual(['db2']);
      const r = haproxyCheck(t);
      expect(r.out).toContain('Configuration file is valid');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a stats password HAProxy would misparse', () => {
    expect(() => rendered('', 'has space and #hash')).toThrow(/haproxy_stats secret has characters/);
  });

  it('a broken config is caught by haproxy -c (the validator is not a rubber stamp)', () => {
    const r = haproxyCheck(rendered().replace('balance roundrobin', 'balance nonsense'));
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/balance only supports/);
  });
});

describe('show stat', () => {
  const csv = [
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status',
    'primary,FRONTEND,,,0,0,4096,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,',
    'primary,db1,0,0,3,5,,9,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,42,0,,1,2,1,,9,,2,0,,2,L7OK',
    'primary,db2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,40,40,,1,2,2,,0,,2,0,,0,L7STS',
    'primary,db3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,1,1,40,40,,1,2,3,,0,,2,0,,0,L7STS',
    'primary,BACKEND,0,0,3,5,410,9,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,42,0,,1,2,0,,9,,1,0,,2,',
  ].join('\n');

  it('parses server rows and their state', () => {
    const s = parseShowStat(csv);
    expect(s.map((x) => [x.server, x.status, x.checkStatus, x.currentSessions])).toEqual([
      ['db1', 'UP', 'L7OK', 3],
      ['db2', 'DOWN', 'L7STS', 0],
      ['db3', 'UP 1/2', 'L7STS', 0],
    ]);
  });

  it('counts a server going down ("UP 1/2") as still receiving connections', () => {
    expect(upServers(parseShowStat(csv), 'primary')).toEqual(['db1', 'db3']);
  });
});
