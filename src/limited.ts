/**
 * How many broker calls a batch of this server's own (lease renewals, the
 * restore after an outage) keeps in flight. Thousands at once make a broker
 * that takes them in turn answer the last ones past the core's bound, which
 * then takes the broker for stalled; a bounded pipeline keeps every answer
 * quick and the batch as fast as the broker allows.
 */
export const batchInFlight = 128;

/**
 * Runs `work` on every item, at most `limit` at a time. Stops taking new
 * items after the first failure, and throws it once those under way end.
 */
export async function eachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>, limit = batchInFlight): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

/**
 * At most `limit` runs at a time; the others wait, in the order they came.
 * For work that arrives from outside in bursts (streams registering after a
 * server died), where `eachLimited` is for a batch known in advance.
 */
export class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.free = limit;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await work();
    } finally {
      // The slot passes to the next in line, or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
