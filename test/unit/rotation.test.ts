import { describe, expect, it } from 'vitest';
import { findRotatable, NOT_ROTATED, ROTATABLE, withPassword } from '../../src/components/rotation.js';
import { SECRET_NAMES } from '../../src/config/secrets.js';
import { holding, undoHeld } from '../../src/interrupt.js';

describe('what dpgc rotate covers', () => {
  it('every secret dpgc generates is either rotated or said not to be, with the reason', () => {
    for (const name of SECRET_NAMES) {
      const rotated = ROTATABLE.some((r) => r.secret === name);
      expect(rotated || NOT_ROTATED[name] !== undefined, name).toBe(true);
      expect(rotated && NOT_ROTATED[name] !== undefined, name).toBe(false);
    }
  });

  it('--role takes the role or the secret', () => {
    expect(findRotatable('replicator')?.secret).toBe('replication');
    expect(findRotatable('replication')?.user).toBe('replicator');
    expect(findRotatable('postgres')?.secret).toBe('postgres_superuser');
    expect(findRotatable('app_user')?.kind).toBe('routed');
    expect(findRotatable('metrics_web')?.kind).toBe('metrics-web');
    expect(findRotatable('dpgc_metrics')?.secret).toBe('metrics_web');
    expect(findRotatable('pgbackrest_cipher')).toBeUndefined();
  });
});

describe("a replica's passfile with the new replication password", () => {
  it("replaces the user's password on each of its lines, escaped as Patroni and libpq do, and keeps the others", () => {
    const file = '127.0.0.11:5432:*:replicator:old\n127.0.0.12:5432:*:replicator:old\n127.0.0.11:5432:*:rewind_user:keep\n';
    expect(withPassword(file, 'replicator', 'n:e\\w')).toBe('127.0.0.11:5432:*:replicator:n\\:e\\\\w\n127.0.0.12:5432:*:replicator:n\\:e\\\\w\n127.0.0.11:5432:*:rewind_user:keep\n');
  });

  it('reads an escaped colon in a field as part of it, and leaves a file without the user as it is', () => {
    const file = 'host\\:x:5432:*:replicator:a\\:b\n';
    expect(withPassword(file, 'replicator', 'new')).toBe('host\\:x:5432:*:replicator:new\n');
    expect(withPassword('h:1:*:other:pw\n', 'replicator', 'new')).toBe('h:1:*:other:pw\n');
  });
});

describe('held work on an abort at once', () => {
  it('lets the held section finish (its undo included), then reports it', async () => {
    const order: string[] = [];
    const run = holding('resume PgBouncer', async () => void order.push('undo'), async () => {
      await new Promise((r) => setTimeout(r, 50));
      order.push('work');
    });
    const held = await undoHeld(5000);
    await run;
    expect(held).toEqual(['resume PgBouncer']);
    expect(order).toEqual(['work', 'undo']);
  });

  it('undoes a section that does not finish in time, and a normal end undoes too', async () => {
    const undone: string[] = [];
    let release = () => {};
    const stuck = holding('stuck', async () => void undone.push('stuck'), () => new Promise<void>((r) => (release = r)));
    expect(await undoHeld(50)).toEqual(['stuck']);
    expect(undone).toEqual(['stuck']);
    release();
    await stuck;
    await holding('quick', async () => void undone.push('quick'), async () => undefined);
    expect(undone).toEqual(['stuck', 'stuck', 'quick']);
    expect(await undoHeld(10)).toEqual([]);
  });
});
