import { Listr, ListrLogger, ProcessOutput, type ListrTask, type ListrTaskWrapper, type ListrDefaultRenderer, type ListrSimpleRenderer } from 'listr2';
import type { GlobalOptions } from '../context.js';
import { throwIfInterrupted } from '../interrupt.js';
import { redact } from '../output/redact.js';

/**
 * Listr task graphs with "changed / unchanged" bookkeeping, so a second run
 * of a sprint can say, truthfully, that it changed nothing.
 */
export interface TaskContext {
  outcomes: { title: string; changed: boolean }[];
}

export type Outcome = boolean | { changed: boolean; note?: string } | void;
export type TaskFn = (t: ListrTaskWrapper<TaskContext, ListrDefaultRenderer, ListrSimpleRenderer>) => Promise<Outcome>;
export type Task = ListrTask<TaskContext, ListrDefaultRenderer, ListrSimpleRenderer>;

/** A leaf task: its function returns whether it changed the host. */
export function step(title: string, fn: TaskFn, opts: { enabled?: boolean } = {}): Task {
  return {
    title,
    enabled: opts.enabled ?? true,
    task: async (ctx, t) => {
      throwIfInterrupted();
      const o = await fn(t);
      const changed = typeof o === 'boolean' ? o : (o?.changed ?? false);
      const note = typeof o === 'object' && o?.note ? `, ${o.note}` : '';
      ctx.outcomes.push({ title, changed });
      t.title = redact(`${title} (${changed ? 'changed' : 'unchanged'}${note})`);
    },
  };
}

/** Tasks for independent hosts, run concurrently. */
export function parallel(title: string, tasks: Task[]): Task {
  return { title, task: (_ctx, t) => t.newListr(tasks, { concurrent: true, exitOnError: true }) };
}

export function sequence(title: string, tasks: Task[]): Task {
  return { title, task: (_ctx, t) => t.newListr(tasks, { concurrent: false, exitOnError: true }) };
}

/** Runs a task list with the renderer that fits: live on a TTY, timestamped lines in CI, silent for --json. */
export async function runTasks(tasks: Task[], opts: Pick<GlobalOptions, 'json' | 'verbose'>): Promise<TaskContext> {
  const tty = Boolean(process.stderr.isTTY) && !process.env['CI'];
  // The renderer is chosen at run time; listr2's types want it fixed, hence the casts.
  const list = new Listr<TaskContext, 'default', 'simple'>(tasks, {
    concurrent: false,
    exitOnError: true,
    ctx: { outcomes: [] },
    renderer: (opts.json ? 'silent' : tty ? 'default' : 'simple') as 'default',
    fallbackRenderer: 'simple',
    rendererOptions: { logger: toStderr(), timer: { condition: true, field: (ms: number) => `${(ms / 1000).toFixed(1)}s`, format: () => (s: string) => s } as never, collapseSubtasks: false },
    fallbackRendererOptions: { logger: toStderr(), timestamp: { format: () => (s: string) => s } as never, timer: { condition: true, field: (ms: number) => `${(ms / 1000).toFixed(1)}s`, format: () => (s: string) => s } as never },
    registerSignalListeners: false,
  });
  return list.run();
}

/** stdout is reserved for --json: the task list is for humans, so it goes to stderr. */
function toStderr(): ListrLogger {
  return new ListrLogger({ useIcons: true, processOutput: new ProcessOutput(process.stderr, process.stderr) });
}

export function summarize(ctx: TaskContext): { changed: number; unchanged: number } {
  const changed = ctx.outcomes.filter((o) => o.changed).length;
  return { changed, unchanged: ctx.outcomes.length - changed };
}

/**
 * Per-host work that installs packages: concurrent on real hosts, one at a
 * time where "hosts" share one machine (the lab, local or over SSH), since
 * they share one dpkg database.
 */
export function perHost(inv: { lab: boolean; hosts: { transport: string }[] }): (title: string, tasks: Task[]) => Task {
  return inv.lab || inv.hosts.every((h) => h.transport === 'local') ? sequence : parallel;
}

/**
 * A step that needs the live database (a connection, a query): under
 * --dry-run there may be no server yet, so it reports unchanged and why.
 */
export function liveOnly(dryRun: boolean) {
  return <T extends Outcome>(fn: () => Promise<T>) =>
    async (): Promise<Outcome> => (dryRun ? { changed: false, note: 'not checked under --dry-run' } : fn());
}
