import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint, keyType, knownHostsId, parseKnownHosts } from '../../src/hosts/known-hosts.js';

/** An ssh-ed25519 public key blob: string "ssh-ed25519", then a 32-byte key. */
function blob(seed: number): Buffer {
  const type = Buffer.from('ssh-ed25519');
  const key = Buffer.alloc(32, seed);
  const len = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  return Buffer.concat([len(type.length), type, len(key.length), key]);
}
const b64 = (seed: number) => blob(seed).toString('base64');

describe('known_hosts', () => {
  it('names hosts the way OpenSSH writes them', () => {
    expect(knownHostsId('127.0.0.11', 22)).toBe('127.0.0.11');
    expect(knownHostsId('127.0.0.11', 2222)).toBe('[127.0.0.11]:2222');
  });

  it('matches plain, listed, wildcard and hashed entries, honouring negation and markers', () => {
    const id = '[127.0.0.11]:2222';
    const salt = Buffer.alloc(20, 7);
    const hash = createHmac('sha1', salt).update(id).digest('base64');
    const text = [
      '# comment',
      `[127.0.0.11]:2222 ssh-ed25519 ${b64(1)}`,
      `127.0.0.11 ssh-ed25519 ${b64(2)}`,
      `other,[127.0.0.11]:2222 ssh-ed25519 ${b64(3)}`,
      `[127.0.0.*]:2222,![127.0.0.11]:2222 ssh-ed25519 ${b64(4)}`,
      `|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${b64(5)}`,
      `@revoked [127.0.0.11]:2222 ssh-ed25519 ${b64(6)}`,
      `@cert-authority [127.0.0.11]:2222 ssh-ed25519 ${b64(7)}`,
      '',
    ].join('\n');
    const found = parseKnownHosts(text, id);
    // Line 3 is for port 22, line 5 excludes this host, a CA line is not a host key.
    expect(found.map((k) => [k.marker, k.line, k.blob.toString('base64')])).toEqual([
      ['', 2, b64(1)],
      ['', 4, b64(3)],
      ['', 6, b64(5)],
      ['@revoked', 7, b64(6)],
    ]);
  });

  it('prints fingerprints and key types as ssh-keygen does', () => {
    expect(fingerprint(blob(1))).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyType(blob(1))).toBe('ssh-ed25519');
    expect(keyType(Buffer.alloc(0))).toBe('unknown');
  });
});
