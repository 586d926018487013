import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alertThresholds, durationSeconds } from '../../src/components/backup-schedule.js';
import { backupMetricsFiles, backupMetricsScript, renderMetricsConfig } from '../../src/components/backup-metrics.js';
import { hostPaths } from '../../src/config/paths.js';
import { labInv } from '../helpers/lab-inventory.js';

describe('backup alert thresholds from the inventory', () => {
  it('auto: the schedule period and a quarter; a full backup every 7 periods and a quarter', () => {
    const inv = labInv('\n');
    inv.backup.schedule = '1d';
    expect(alertThresholds(inv)).toEqual({ maxAgeS: 86_400 + 21_600, fullMaxAgeS: 7 * 86_400 + 151_200, repoMinFreeRatio: 0.15 });
    inv.backup.schedule = '30s';
    expect(alertThresholds(inv)).toMatchObject({ maxAgeS: 90, fullMaxAgeS: 210 + 60 });
  });
  it('explicit ages and a free-space share win', () => {
    const inv = labInv('\n');
    inv.backup.alerts = { max_age: '26h', full_max_age: '8d', repo_min_free_pct: 20 };
    expect(alertThresholds(inv)).toEqual({ maxAgeS: 93_600, fullMaxAgeS: 691_200, repoMinFreeRatio: 0.2 });
    expect(durationSeconds('90s')).toBe(90);
    expect(() => durationSeconds('soon')).toThrow(/not a duration/);
  });
});

/**
 * The script node_exporter's metrics come from, run with a stand-in for
 * `pgbackrest info` (the real one runs in test/integration/sprint4.test.ts);
 * promtool checks what it writes.
 */
describe('the backup metrics script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dpgc-metrics-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const inv = labInv('\n');
  const paths = hostPaths(inv, { root: dir, name: 'ctl' });
  const node = { paths };
  const f = backupMetricsFiles(node);
  const bin = join(dir, 'bin');
  const info = [
    {
      name: inv.cluster,
      status: { code: 0, message: 'ok' },
      backup: [
        { label: 'F1', type: 'full', timestamp: { start: 1000, stop: 1100 }, info: { repository: { delta: 5000 } } },
        { label: 'F1_D1', type: 'diff', timestamp: { start: 2000, stop: 2050 }, info: { repository: { delta: 300 } } },
        { label: 'F1_I1', type: 'incr', timestamp: { start: 3000, stop: 3010 }, error: true, info: { repository: { delta: 7 } } },
      ],
    },
  ];
  for (const d of [bin, paths.textfileDir, paths.backupState, paths.libexecDir, join(paths.backupMetricsConf, '..')]) mkdirSync(d, { recursive: true });
  const conf = JSON.parse(renderMetricsConfig(inv, node)) as Record<string, unknown>;
  conf['repo_path'] = dir;
  writeFileSync(f.config, JSON.stringify(conf));
  writeFileSync(f.script, backupMetricsScript());
  chmodSync(f.script, 0o755);
  const run = (args: string[], infoOut: string, rc = 0) => {
    writeFileSync(join(bin, 'pgbackrest'), `#!/bin/sh\ncat <<'EOF'\n${infoOut}\nEOF\nexit ${rc}\n`);
    chmodSync(join(bin, 'pgbackrest'), 0o755);
    return spawnSync('/usr/bin/python3', [f.script, f.config, ...args], { env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
  };

  it('writes the newest successful backup per type, counts, stored size, thresholds and the attempt, atomically', () => {
    const r = run(['diff', '1990', '2060', '82'], JSON.stringify(info));
    expect(r.status, r.stderr).toBe(0);
    const text = readFileSync(f.textfile, 'utf8');
    const s = inv.cluster;
    expect(text).toContain(`dpgc_backup_last_success_timestamp_seconds{stanza="${s}",type="full"} 1100`);
    expect(text).toContain(`dpgc_backup_last_success_timestamp_seconds{stanza="${s}",type="diff"} 2050`);
    // The failed incremental counts nowhere.
    expect(text).not.toContain('type="incr"} 3010');
    expect(text).toContain(`dpgc_backup_repo_backups{stanza="${s}",type="incr"} 0`);
    expect(text).toContain(`dpgc_backup_repo_size_bytes{stanza="${s}"} 5300`);
    expect(text).toContain(`dpgc_backup_last_run_exit_code{stanza="${s}",type="diff"} 82`);
    expect(text).toMatch(new RegExp(`dpgc_backup_max_age_seconds\\{stanza="${s}",type="any"\\} ${alertThresholds(inv).maxAgeS}\\n`));
    expect(text).toMatch(/dpgc_backup_repo_min_free_ratio\{stanza="[^"]+",mountpoint="\/[^"]*"\} 0\.15\n/);
    expect((readdirSync(paths.textfileDir))).toEqual(['dpgc-backup.prom']);
    expect(execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })).toBe('');
  });

  it('keeps the last attempt when run without one, and says so when pgbackrest info fails', () => {
    const r = run([], 'ERROR: [103]: unable to find a valid repository', 103);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('pgbackrest info failed');
    const text = readFileSync(f.textfile, 'utf8');
    expect(text).toContain(`dpgc_backup_info_ok{stanza="${inv.cluster}"} 0`);
    expect(text).toContain(`dpgc_backup_last_run_exit_code{stanza="${inv.cluster}",type="diff"} 82`);
    expect(text).not.toContain('dpgc_backup_last_success_timestamp_seconds{');
  });
});
