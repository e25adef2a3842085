/**
 * Wraps a batched async function so that calls made while it is busy (or in the same turn of
 * the event loop) run together: the records of several partitions' tasks share one model batch
 * instead of waiting for one another's. At most `concurrency` runs go on at once, each with up to
 * `maxItems` items: a larger call is cut into pieces that run like separate calls, so that no run
 * grows past what one model batch should take. Results go back to their callers in order; a
 * failed run fails every call in it.
 *
 * @example
 * const classify = coalesce((frames: Frame[]) => engine.classify(frames), 64);
 * const [a, b] = await Promise.all([classify(framesOfTask1), classify(framesOfTask2)]); // one run
 */
export function coalesce<T, R>(run: (items: T[]) => Promise<R[]>, maxItems: number, concurrency = 1): (items: readonly T[]) => Promise<R[]> {
  interface Call {
    readonly items: readonly T[];
    readonly resolve: (results: R[]) => void;
    readonly reject: (err: unknown) => void;
  }
  const queue: Call[] = [];
  let running = 0;
  let scheduled = false;

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const group = [queue.shift()!];
      let size = group[0]!.items.length;
      while (queue.length > 0 && size + queue[0]!.items.length <= maxItems) {
        size += queue[0]!.items.length;
        group.push(queue.shift()!);
      }
      try {
        const results = await run(group.flatMap((c) => c.items));
        let at = 0;
        for (const c of group) {
          c.resolve(results.slice(at, at + c.items.length));
          at += c.items.length;
        }
      } catch (err) {
        for (const c of group) c.reject(err);
      }
    }
    running--;
  }

  // One turn of the event loop first, so that the calls of tasks woken together share a run.
  function start(): void {
    scheduled = false;
    while (running < concurrency && queue.length > 0) {
      running++;
      void drain();
    }
  }

  const call = (items: readonly T[]) =>
    new Promise<R[]>((resolve, reject) => {
      queue.push({ items, resolve, reject });
      if (running < concurrency && !scheduled) {
        scheduled = true;
        setImmediate(start);
      }
    });

  return async (items) => {
    if (items.length <= maxItems) return call(items);
    const pieces: Array<Promise<R[]>> = [];
    for (let i = 0; i < items.length; i += maxItems) pieces.push(call(items.slice(i, i + maxItems)));
    return (await Promise.all(pieces)).flat();
  };
}
