import type { Command } from 'commander';
import { clusterView } from '../../components/cluster.js';
import { CriteriaError, UsageError } from '../../errors.js';
import { interruption } from '../../interrupt.js';
import { formatStatus, viewProblems } from '../../output/status.js';
import { redact } from '../../output/redact.js';
import { emitJson, withContext } from '../setup.js';

/**
 * `dpgc status`: the live cluster in one view. Exit 1 when something is
 * wrong (so scripts can use it), 0 when all is well. With --watch it
 * refreshes until Ctrl-C; with --watch --json it prints one compact JSON
 * document per refresh (JSON Lines).
 */
export async function statusCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ watch?: string | boolean }>();
  const every = o.watch === undefined || o.watch === false ? undefined : o.watch === true ? 2 : Number(o.watch);
  if (every !== undefined && !(every >= 0.5)) throw new UsageError(`--watch takes a number of seconds (0.5 or more), got "${String(o.watch)}"`);
  await withContext(cmd, async (ctx) => {
    if (every === undefined) {
      const view = await clusterView(ctx);
      const problems = viewProblems(view);
      if (ctx.options.json) emitJson({ ...view, problems });
      else process.stderr.write(`${redact(formatStatus(view))}\n`);
      if (problems.length) throw new CriteriaError(`${problems.length} problem(s): ${problems.map((p) => p.what).join('; ')}`);
      return;
    }
    while (!interruption.signal.aborted) {
      const view = await clusterView(ctx);
      if (ctx.options.json) process.stdout.write(`${redact(JSON.stringify({ ...view, problems: viewProblems(view) }))}\n`);
      else process.stderr.write(`${process.stderr.isTTY ? '\x1b[2J\x1b[H' : '\n'}${redact(formatStatus(view))}\n`);
      await new Promise((r) => {
        const t = setTimeout(r, every * 1000);
        interruption.signal.addEventListener('abort', () => (clearTimeout(t), r(undefined)), { once: true });
      });
    }
  });
}
