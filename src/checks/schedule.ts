/**
 * The order checks run in, apart from what they measure, so it can be tested
 * without a cluster. At most `concurrency` jobs at once, and never two
 * exclusive ones together (two loads on one cluster would measure each other).
 * Exclusive jobs start as soon as the exclusive slot frees: they run one after
 * another, so their sum is the least the whole run can take, and everything
 * else fits in beside them. Results come back in listed order, and `onDone`
 * is called in listed order too, as soon as every earlier job has finished,
 * so a report streams in the order the sprint lists its criteria.
 */
export interface ScheduleOptions<T, R> {
  concurrency: number;
  exclusive: (item: T) => boolean;
  run: (item: T, index: number) => Promise<R>;
  onDone?: (result: R, index: number) => void;
}

export function schedule<T, R>(items: readonly T[], o: ScheduleOptions<T, R>): Promise<R[]> {
  const n = items.length;
  const limit = Math.max(1, Math.floor(o.concurrency));
  const exclusive = items.map((t) => o.exclusive(t));
  const results = new Array<R>(n);
  const done = new Array<boolean>(n).fill(false);
  const pending = items.map((_, i) => i);
  let running = 0;
  let exclusiveRunning = false;
  let finished = 0;
  let reported = 0;
  let failed = false;

  return new Promise<R[]>((resolve, reject) => {
    if (n === 0) return resolve(results);
    const pick = (): number | undefined => {
      const k = exclusiveRunning ? -1 : pending.findIndex((i) => exclusive[i]);
      const j = k >= 0 ? k : pending.findIndex((i) => !exclusive[i]);
      return j >= 0 ? pending.splice(j, 1)[0] : undefined;
    };
    const pump = () => {
      while (!failed && running < limit) {
        const i = pick();
        if (i === undefined) return;
        running += 1;
        if (exclusive[i]) exclusiveRunning = true;
        Promise.resolve()
          .then(() => o.run(items[i]!, i))
          .then((r) => {
            results[i] = r;
            done[i] = true;
            running -= 1;
            finished += 1;
            if (exclusive[i]) exclusiveRunning = false;
            for (; reported < n && done[reported]; reported++) o.onDone?.(results[reported]!, reported);
            if (finished === n) resolve(results);
            else pump();
          })
          // A job that throws (or an onDone that does) ends the run: callers turn errors into results first.
          .catch((e: unknown) => {
            failed = true;
            reject(e instanceof Error ? e : new Error(String(e)));
          });
      }
    };
    pump();
  });
}
