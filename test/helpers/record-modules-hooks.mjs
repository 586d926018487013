// Module hooks for record-modules.mjs: runs in Node's hooks thread.
import { appendFileSync } from 'node:fs';

export async function load(url, context, nextLoad) {
  if (process.env.DPGC_MODULE_LOG) appendFileSync(process.env.DPGC_MODULE_LOG, `${url}\n`);
  return nextLoad(url, context);
}
