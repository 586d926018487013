import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ServerHostKeyAlgorithm } from 'ssh2';
import type { SshSettings } from '../config/schema.js';
import { HostError } from '../errors.js';

/**
 * Host key trust the way OpenSSH decides it: pinned fingerprints and
 * known_hosts entries (plain, patterns, hashed, @revoked). Split from the
 * transport so the lab (which pre-fills known_hosts) and tests share the
 * same host-id and line formats.
 */

/** ssh2's default host key algorithms, in its order. */
const HOST_KEY_ALGOS: ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

export interface KnownKey {
  marker: '' | '@revoked' | '@cert-authority';
  type: string;
  blob: Buffer;
  line: number;
}

/**
 * Decides whether a host key is trusted: a pinned fingerprint or a matching
 * known_hosts entry accepts; a host known with other keys refuses (always);
 * an unknown host refuses unless new keys are accepted, which records them.
 */
export class HostKeyTrust {
  private constructor(
    private readonly name: string,
    private readonly where: string,
    /** `address`, or `[address]:port` off port 22, as OpenSSH writes it. */
    private readonly hostId: string,
    private readonly file: string,
    private readonly known: KnownKey[],
    private fileEndsClean: boolean,
    private readonly pinned: string[],
    private readonly acceptNew: boolean,
  ) {}

  static async load(o: { name: string; address: string; ssh: SshSettings }, acceptNew: boolean): Promise<HostKeyTrust> {
    const file = expandHome(o.ssh.known_hosts ?? '~/.ssh/known_hosts');
    const hostId = knownHostsId(o.address, o.ssh.port);
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new HostError(`${o.name}: cannot read ${file}: ${(e as Error).message}`);
    }
    const known = parseKnownHosts(text, hostId);
    return new HostKeyTrust(o.name, `${o.address}:${o.ssh.port}`, hostId, file, known, text === '' || text.endsWith('\n'), o.ssh.host_key_fingerprints ?? [], acceptNew);
  }

  /** Known key types first, so the server offers the key we can check (as OpenSSH does). */
  preferredAlgorithms(): ServerHostKeyAlgorithm[] {
    const first = this.known
      .filter((k) => k.marker === '')
      .flatMap((k) => (k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.type]))
      .filter((a): a is ServerHostKeyAlgorithm => (HOST_KEY_ALGOS as string[]).includes(a));
    return [...new Set([...first, ...HOST_KEY_ALGOS])];
  }

  /**
   * Seen for the first time: neither pinned nor in known_hosts, and no other
   * key is on record for the host (that would be a change, never asked about).
   * Only then may an operator be asked to trust it.
   */
  isNew(blob: Buffer): boolean {
    return !this.pinned.length && !this.known.some((k) => k.marker === '' || (k.marker === '@revoked' && k.blob.equals(blob)));
  }

  /** undefined when trusted, else the error to report. */
  async check(blob: Buffer): Promise<HostError | undefined> {
    const fp = fingerprint(blob);
    const type = keyType(blob);
    const same = (k: KnownKey) => k.blob.equals(blob);
    if (this.known.some((k) => k.marker === '@revoked' && same(k))) {
      return new HostError(`${this.name}: the SSH host key of ${this.where} (${fp}) is marked @revoked in ${this.file}; refusing to connect`);
    }
    if (this.pinned.includes(fp) || this.known.some((k) => k.marker === '' && same(k))) return undefined;

    const old = this.known.filter((k) => k.marker === '');
    if (old.length) {
      const was = old.map((k) => `${fingerprint(k.blob)} (${this.file}:${k.line})`).join(', ');
      return new HostError(
        `${this.name}: the SSH host key of ${this.where} has CHANGED: known_hosts has ${was}, the host now offers ${type} ${fp} — ` +
          `possible man-in-the-middle attack, so dpgc refuses to connect, even with --accept-new-host-keys; ` +
          `if the host was reinstalled, remove its line from ${this.file}`,
      );
    }
    if (this.pinned.length) {
      return new HostError(
        `${this.name}: the SSH host key of ${this.where} (${type} ${fp}) matches none of its pinned host_key_fingerprints (${this.pinned.join(', ')}) — ` +
          `possible man-in-the-middle attack, so dpgc refuses to connect; if the host was reinstalled, update host_key_fingerprints`,
      );
    }
    if (!this.acceptNew) {
      return new HostError(
        `${this.name}: unknown SSH host key for ${this.where}: ${type} ${fp} (not in ${this.file}, no pinned fingerprint); ` +
          `if that is the host's key, pass --accept-new-host-keys, or add \`host_key_fingerprints: [${fp}]\` under the host's ssh settings`,
      );
    }
    try {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      await appendFile(this.file, `${this.fileEndsClean ? '' : '\n'}${this.hostId} ${type} ${blob.toString('base64')}\n`, { mode: 0o600 });
    } catch (e) {
      return new HostError(`${this.name}: could not record the SSH host key of ${this.where} (${fp}) in ${this.file}: ${(e as Error).message}`, {
        hint: `Fix the file's permissions, or pin the key instead: host_key_fingerprints: [${fp}]`,
      });
    }
    // Re-keying and reconnects must find it known, not append it again.
    this.fileEndsClean = true;
    this.known.push({ marker: '', type, blob, line: 0 });
    return undefined;
  }
}

/** Entries of an OpenSSH known_hosts file that apply to `hostId`. */
export function parseKnownHosts(text: string, hostId: string): KnownKey[] {
  const out: KnownKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith('#')) return;
    const marker = fields[0] === '@revoked' || fields[0] === '@cert-authority' ? fields.shift() : '';
    const [hosts, type, b64] = fields;
    if (!hosts || !type || !b64 || !hostsMatch(hosts, hostId)) return;
    out.push({ marker: marker as KnownKey['marker'], type, blob: Buffer.from(b64, 'base64'), line: i + 1 });
  });
  return out.filter((k) => k.marker !== '@cert-authority');
}

function hostsMatch(field: string, hostId: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const want = Buffer.from(hash, 'base64');
    const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(hostId).digest();
    return want.length === got.length && timingSafeEqual(want, got);
  }
  let hit = false;
  for (const pattern of field.split(',')) {
    const negated = pattern.startsWith('!');
    if (!globMatch(negated ? pattern.slice(1) : pattern, hostId)) continue;
    if (negated) return false;
    hit = true;
  }
  return hit;
}

function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(s);
}

/** OpenSSH's `SHA256:<base64 without padding>` of the key blob. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type, the blob's first SSH string (`ssh-ed25519`, `ssh-rsa`…). */
export function keyType(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  return blob.subarray(4, 4 + len).toString('latin1') || 'unknown';
}

/** How OpenSSH names a host in known_hosts: `address`, or `[address]:port` off port 22. */
export function knownHostsId(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}
