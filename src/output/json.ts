import { redact } from './redact.js';

/**
 * `--json` promises exactly one JSON document on stdout. Commands emit their
 * result here; when a run fails before emitting, the CLI boundary emits the
 * error as that one document instead.
 */
let emitted = false;

export function emitJson(doc: unknown): void {
  emitted = true;
  process.stdout.write(`${redact(JSON.stringify(doc, null, 2))}\n`);
}

export function jsonEmitted(): boolean {
  return emitted;
}
