// Preload (`node --import`) that records every module a process loads into
// the file named by DPGC_MODULE_LOG, so a test can prove what `dpgc --help`
// does not load. ESM loads go through a module.register hook; CommonJS
// packages (pg, ssh2) can also be require()d by other CommonJS, which no
// ESM hook sees, so require.cache is written out at exit as well.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

register('./record-modules-hooks.mjs', import.meta.url);

const log = process.env.DPGC_MODULE_LOG;
process.on('exit', () => {
  if (log) appendFileSync(log, `${Object.keys(createRequire(import.meta.url).cache).join('\n')}\n`);
});
