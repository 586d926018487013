import { describe, expect, it } from 'vitest';
import { renderSystemdUnit, type ServiceSpec } from '../../src/hosts/services.js';
import { q } from '../../src/templates.js';
import { shellJoin } from '../../src/hosts/quote.js';

/** The unit text as dpgc wrote it before it became a template: the template must not change a byte. */
function legacyUnit(s: ServiceSpec): string {
  return [
    '[Unit]',
    `Description=dpgc ${s.name}`,
    'After=network-online.target',
    '',
    '[Service]',
    `User=${s.user}`,
    `Group=${s.user}`,
    `ExecStart=${shellJoin(s.argv)}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    ...(s.envFile ? [`EnvironmentFile=${s.envFile}`] : []),
    ...Object.entries(s.env ?? {}).map(([k, v]) => `Environment=${q.systemd(`${k}=${v}`)}`),
    ...(s.cwd ? [`WorkingDirectory=${s.cwd}`] : []),
    ...(s.nofile ? [`LimitNOFILE=${s.nofile}`] : []),
    'KillMode=mixed',
    'TimeoutStopSec=60',
    `Restart=${s.restart ?? 'on-failure'}`,
    'RestartSec=1',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

describe('systemd unit template', () => {
  const minimal: ServiceSpec = { name: 'etcd', user: 'etcd', argv: ['/usr/bin/etcd', '--name', 'db1'] };
  const full: ServiceSpec = {
    name: 'patroni',
    user: 'postgres',
    argv: ['patroni', '/etc/patroni/patroni.yml'],
    envFile: '/etc/dpgc/patroni.env',
    env: { LC_ALL: 'C.UTF-8', ODD: 'a "quoted" 100% \\ value' },
    cwd: '/var/lib/postgresql',
    nofile: 65536,
    restart: 'always',
  };

  it('renders exactly the unit dpgc always wrote', () => {
    for (const s of [minimal, full]) expect(renderSystemdUnit(s)).toBe(legacyUnit(s));
  });

  it('keeps the restart policy and the environment handling', () => {
    const text = renderSystemdUnit(full);
    expect(text).toContain('Restart=always\nRestartSec=1\n');
    expect(text).toContain('EnvironmentFile=/etc/dpgc/patroni.env\nEnvironment="LC_ALL=C.UTF-8"\nEnvironment="ODD=a \\"quoted\\" 100%% \\\\ value"\n');
    expect(renderSystemdUnit(minimal)).toContain('Restart=on-failure\nRestartSec=1\n');
    expect(renderSystemdUnit(minimal)).not.toContain('Environment');
  });

  it('refuses a value systemd would split into two settings', () => {
    expect(() => renderSystemdUnit({ ...minimal, env: { X: 'a\nExecStartPre=/bin/sh' } })).toThrow(/newline/);
  });
});
