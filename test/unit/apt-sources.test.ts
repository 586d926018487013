import { describe, expect, it } from 'vitest';
import { aptFilesFor, debianMirror } from '../../src/components/apt-sources.js';
import { patroniPackages } from '../../src/components/patroni-package.js';

const deb822 = `Types: deb
URIs: http://mirror.example.internal/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.internal/debian-security
Suites: bookworm-security
Components: main
`;

describe('apt sources for Patroni with the leader-key fix', () => {
  it('finds the Debian mirror a host already uses, in deb822 or one-line form', () => {
    expect(debianMirror(deb822, 'bookworm')).toBe('http://mirror.example.internal/debian');
    expect(debianMirror('deb http://ftp.example.org/debian bookworm main\n', 'bookworm')).toBe('http://ftp.example.org/debian');
    expect(debianMirror('deb [arch=amd64] http://ftp.example.org/debian/ bookworm main contrib\n', 'bookworm')).toBe('http://ftp.example.org/debian');
    expect(debianMirror(deb822, 'trixie')).toBeUndefined();
    expect(debianMirror('Types: deb\nURIs: http://x/debian-security\nSuites: bookworm-security\n', 'bookworm')).toBeUndefined();
  });

  it('on Debian 12 adds trixie from that mirror, pinned so only patroni and python3-ydiff come from it', () => {
    const files = aptFilesFor('bookworm', 'debian', 'http://mirror.example.internal/debian');
    expect(files.map((f) => f.path)).toEqual(['/etc/apt/sources.list.d/dpgc-trixie.sources', '/etc/apt/preferences.d/dpgc-patroni.pref']);
    expect(files[0]!.content).toMatch(/^URIs: http:\/\/mirror\.example\.internal\/debian$/m);
    expect(files[0]!.content).toMatch(/^Suites: trixie$/m);
    const pref = files[1]!.content.split('\n\n').map((s) => s.replace(/^#.*\n/gm, ''));
    expect(pref).toEqual(['Package: *\nPin: release n=trixie\nPin-Priority: 100', 'Package: patroni python3-ydiff\nPin: release n=trixie\nPin-Priority: 990\n']);
    expect(patroniPackages('bookworm', 'debian')).toEqual(['patroni', 'python3-ydiff', 'python3-etcd']);
  });

  it('adds nothing on Debian 13, and the PostgreSQL project repository for pgdg', () => {
    expect(aptFilesFor('trixie', 'debian', undefined)).toEqual([]);
    const [pgdg] = aptFilesFor('bookworm', 'pgdg', undefined);
    expect(pgdg!.path).toBe('/etc/apt/sources.list.d/dpgc-pgdg.sources');
    expect(pgdg!.content).toMatch(/^Suites: bookworm-pgdg$/m);
    expect(pgdg!.content).toMatch(/^Signed-By: \/usr\/share\/postgresql-common\/pgdg\/apt\.postgresql\.org\.asc$/m);
    expect(patroniPackages('bookworm', 'pgdg')).toEqual(['patroni', 'python3-etcd']);
  });

  it('refuses a Debian 12 host without a Debian mirror, saying what to do', () => {
    expect(() => aptFilesFor('bookworm', 'debian', undefined)).toThrow(/no Debian mirror serving bookworm/);
  });
});
