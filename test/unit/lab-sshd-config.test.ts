import { describe, expect, it } from 'vitest';
import { labSshFiles, renderSshdConfig } from '../../src/lab/ssh.js';

describe('the lab sshd_config', () => {
  const text = renderSshdConfig({ addresses: ['127.0.0.10', '127.0.0.11'], port: 2222, files: labSshFiles('/srv/lab') });
  const settings = text.split('\n').filter((l) => l && !l.startsWith('#'));

  it('listens on each lab address, with keys, trust and pid file inside the lab directory', () => {
    expect(settings.filter((l) => l.startsWith('ListenAddress'))).toEqual(['ListenAddress 127.0.0.10:2222', 'ListenAddress 127.0.0.11:2222']);
    expect(settings).toContain('HostKey /srv/lab/ssh/ssh_host_ed25519_key');
    expect(settings).toContain('AuthorizedKeysFile /srv/lab/ssh/authorized_keys');
    expect(settings).toContain('PidFile /srv/lab/ssh/sshd.pid');
  });

  it('allows root by key only, skips bashrc, and has room for parallel tasks', () => {
    for (const l of ['PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', 'UsePAM no', 'StrictModes no', 'SetEnv SHLVL=1', 'MaxSessions 20']) {
      expect(settings).toContain(l);
    }
    expect(settings.find((l) => l.startsWith('MaxStartups'))).toMatch(/^MaxStartups 100:/);
    expect(text).not.toMatch(/\n\n/);
  });
});
