import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/**
 * SCRAM-SHA-256 verifiers computed here, so `ALTER ROLE … PASSWORD` carries
 * the verifier and never the password: statement logs, pg_stat_activity and
 * error messages can only ever show the verifier.
 */
export const SCRAM_ITERATIONS = 4096;

export interface ScramParts {
  iterations: number;
  salt: Buffer;
  storedKey: string;
  serverKey: string;
}

/** PostgreSQL's `rolpassword` format: `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` (base64). */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = SCRAM_ITERATIONS): string {
  // PostgreSQL SASLpreps the password; for the ASCII secrets dpgc generates that is the identity, and NFKC is its main step.
  const salted = pbkdf2Sync(Buffer.from(password.normalize('NFKC'), 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest('base64');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey}:${serverKey}`;
}

export function parseScramVerifier(v: string): ScramParts | undefined {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(v);
  if (!m) return undefined;
  return { iterations: Number(m[1]), salt: Buffer.from(m[2]!, 'base64'), storedKey: m[3]!, serverKey: m[4]! };
}

/** Whether a stored verifier was made from this password (same salt and iterations recomputed). */
export function scramMatches(stored: string | null | undefined, password: string): boolean {
  const p = stored ? parseScramVerifier(stored) : undefined;
  return p !== undefined && scramVerifier(password, p.salt, p.iterations) === stored;
}
