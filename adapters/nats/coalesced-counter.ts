/**
 * A counter for stores that only offer compare-and-set (NATS key/value).
 * Callers that arrive while an increment is in flight wait for the next one,
 * which adds all of them at once and hands each its own value. Without this,
 * a burst of N concurrent calls on one server fights over one key, retrying
 * O(N²) times; with it a burst costs a server two writes (the first caller's,
 * then one for all who came meanwhile), and only the servers of a cluster
 * compete with each other.
 */
export class CoalescedCounter {
  private readonly waiting = new Map<string, Array<{ resolve(value: number): void; reject(error: unknown): void }>>();

  /** `add(name, n)` raises the counter by n atomically and returns its new value. */
  constructor(private readonly add: (name: string, amount: number) => Promise<number>) {}

  next(name: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(name);
      if (queue) return void queue.push({ resolve, reject });
      this.waiting.set(name, [{ resolve, reject }]);
      void this.drain(name);
    });
  }

  private async drain(name: string): Promise<void> {
    for (let queue = this.waiting.get(name); queue && queue.length > 0; queue = this.waiting.get(name)) {
      const batch = queue.splice(0);
      try {
        const last = await this.add(name, batch.length);
        batch.forEach((waiter, i) => waiter.resolve(last - batch.length + 1 + i));
      } catch (error) {
        for (const waiter of batch) waiter.reject(error);
      }
    }
    this.waiting.delete(name);
  }
}
