import type { Client } from './client.js';

/**
 * A client for observing: reads reach the server, every other statement is
 * recorded instead of sent. The same `ensure*` code that applies a change
 * therefore says, under observation, which statements it would send, and
 * cannot change the catalog (no DDL, DML, GRANT or transaction reaches it).
 */
const READ = /^\s*(select|show|with|values|table|explain)\b/i;
/** Transaction control and session settings: meaningless without the writes they frame. */
const FRAME = /^\s*(begin|commit|rollback|start\s+transaction|set|reset)\b/i;

export interface Observing {
  client: Client;
  /** Statements the code would have sent, in order; passwords masked, long ones shortened. */
  statements: string[];
}

export function observing(real: Client): Observing {
  const statements: string[] = [];
  const query = (q: unknown, ...rest: unknown[]): unknown => {
    const text = typeof q === 'string' ? q : ((q as { text?: string } | undefined)?.text ?? '');
    if (READ.test(text) && !/\b(nextval|setval|pg_reload_conf|pg_terminate_backend|pg_cancel_backend)\s*\(/i.test(text)) {
      return (real.query as (...a: unknown[]) => unknown)(q, ...rest);
    }
    if (!FRAME.test(text)) statements.push(describeStatement(text));
    return Promise.resolve({ rows: [], rowCount: 0, command: '', fields: [], oid: 0 });
  };
  const client = new Proxy(real, { get: (target, prop, receiver) => (prop === 'query' ? query : (Reflect.get(target, prop, receiver) as unknown)) });
  return { client, statements };
}

export function describeStatement(text: string): string {
  const one = text
    .replace(/--[^\n]*/g, ' ')
    .replace(/PASSWORD\s+'[^']*'/gi, "PASSWORD '***'")
    .replace(/\s+/g, ' ')
    .trim();
  return `run ${one.length > 160 ? `${one.slice(0, 157)}...` : one}`;
}
