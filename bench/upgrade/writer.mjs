#!/usr/bin/env node
// The application during the upgrade: one writer through PgBouncer (the address applications use),
// inserting its own sequence numbers every 20 ms, reconnecting on error, until the stop file appears.
// Then it reads back which acknowledged numbers the cluster still has.
//
//   node writer.mjs CONFIG STOPFILE   → one JSON line on stdout
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const [config, stopFile] = process.argv.slice(2);
const { loadInventory } = await import(join(root, 'dist/src/config/load.js'));
const { Secrets, secretsPathFor } = await import(join(root, 'dist/src/config/secrets.js'));
const { connect } = await import(join(root, 'dist/src/db/client.js'));
const { appViaPgbouncer } = await import(join(root, 'dist/src/components/endpoints.js'));

const inv = await loadInventory(config);
// The cluster CA, once sprint 5 made TLS required: without it a plaintext login is refused.
const { caPathsFor } = await import(join(root, 'dist/src/components/ca.js'));
const secrets = new Secrets(secretsPathFor(config), { mayCreate: false, caCert: caPathsFor(inv.file).cert });
const ctl = inv.hosts.find((h) => h.roles.includes('pgbouncer'));
const ep = appViaPgbouncer(inv, ctl, 'project');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const setup = await connect(secrets, ep, { timeoutMs: 5000 });
await setup.query('CREATE TABLE IF NOT EXISTS public.upgrade_probe (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
await setup.query('TRUNCATE public.upgrade_probe');
await setup.end();

const acked = [];
const ackedAt = [];
let errors = 0;
let n = 0;
while (!existsSync(stopFile)) {
  let c;
  try {
    c = await connect(secrets, ep, { timeoutMs: 2000 });
    while (!existsSync(stopFile)) {
      const mine = ++n;
      await c.query('INSERT INTO public.upgrade_probe (n) VALUES ($1)', [mine]);
      acked.push(mine);
      ackedAt.push(Date.now());
      await sleep(20);
    }
  } catch {
    errors++;
    await sleep(50);
  } finally {
    await c?.end().catch(() => {});
  }
}
const gaps = ackedAt.slice(1).map((t, i) => t - ackedAt[i]);
const check = await connect(secrets, ep, { timeoutMs: 10_000 });
const present = new Set((await check.query('SELECT n FROM public.upgrade_probe')).rows.map((r) => r.n));
await check.end();
const lost = acked.filter((x) => !present.has(x));
process.stdout.write(
  `${JSON.stringify({
    acknowledged: acked.length,
    failedAttempts: errors,
    lost: lost.length,
    longestGapMs: gaps.length ? Math.max(...gaps) : null,
    gapsOver1s: gaps.filter((g) => g > 1000),
    seconds: ackedAt.length ? (ackedAt.at(-1) - ackedAt[0]) / 1000 : 0,
  })}\n`,
);
