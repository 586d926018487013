import { readFileSync } from 'node:fs';

/** Running, and not a zombie waiting for its parent (kill -0 succeeds on those). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state field follows the `(comm)` field, which may itself contain spaces or parentheses.
    return stat.slice(stat.lastIndexOf(') ') + 2, stat.lastIndexOf(') ') + 3) !== 'Z';
  } catch {
    return false;
  }
}
