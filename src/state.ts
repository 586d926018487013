import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { CheckOutcome } from './checks/types.js';

/**
 * What dpgc last did, beside the inventory (`<inventory>.state.json`). A
 * record, never a source of truth: status and verify measure the live cluster.
 */
export interface SprintRecord {
  at: string;
  inventoryHash: string;
  passed: boolean;
  /** Set when the previous sprint's gate was overridden with --force. */
  forced?: { failing: string[] };
  results: Pick<CheckOutcome, 'id' | 'verdict' | 'value' | 'threshold' | 'detail'>[];
}

export interface State {
  sprints: Record<string, SprintRecord>;
}

export function statePathFor(inventoryFile: string): string {
  return inventoryFile.replace(/\.ya?ml$/, '') + '.state.json';
}

export async function readState(file: string): Promise<State> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as State;
  } catch {
    return { sprints: {} };
  }
}

export async function recordSprint(file: string, id: number, rec: SprintRecord): Promise<void> {
  const s = await readState(file);
  s.sprints[String(id)] = rec;
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function inventoryHash(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 16);
}
