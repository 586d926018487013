import { describe, expect, it } from 'vitest';
import { certainlyNotCommitted } from '../../src/drills/load.js';

describe('certainlyNotCommitted', () => {
  it('an ERROR response aborted the transaction', () => {
    expect(certainlyNotCommitted(Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { severity: 'ERROR' }))).toBe(true);
  });
  it('PgBouncer refusals never reached a server', () => {
    expect(certainlyNotCommitted(new Error('server login has been failing, try again later (server_login_retry)'))).toBe(true);
    expect(certainlyNotCommitted(new Error('query_wait_timeout'))).toBe(true);
  });
  it('FATAL, a dropped connection or a timeout leaves the commit in doubt', () => {
    expect(certainlyNotCommitted(Object.assign(new Error('terminating connection due to administrator command'), { severity: 'FATAL' }))).toBe(false);
    expect(certainlyNotCommitted(new Error('Connection terminated unexpectedly'))).toBe(false);
    expect(certainlyNotCommitted(new Error('no answer within 2000 ms'))).toBe(false);
  });
});
