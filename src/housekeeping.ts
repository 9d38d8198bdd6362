import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import type { Lifecycle } from './lifecycle.js';
import type { Records } from './records.js';

/** How many expired records one broker call takes at most. */
const expiryBatch = 100;

/**
 * The sweep, on a timer: removes subscriptions whose last heartbeat is older
 * than the idle timeout, this server's own and those whose lease ran out
 * because the server that held them died or their client never came back.
 * Each leave is announced once, by whoever removed the record.
 */
export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly core: Core,
    private readonly records: Records,
    private readonly delivery: Delivery,
    private readonly lifecycle: Lifecycle,
    /** False while the broker is away: nothing can be removed then. */
    private readonly brokerAvailable: () => boolean,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.run(), this.core.settings.houseKeepingIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a sweep under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One sweep now (or the one under way). */
  run(): Promise<void> {
    this.running ??= this.sweep()
      .catch((error) => this.core.reportError(error))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async sweep(): Promise<void> {
    // The outage was logged once already.
    if (!this.brokerAvailable()) return;
    const { counters, settings } = this.core;
    const deadline = Date.now() - settings.idleTimeoutMs;
    for (const sub of this.delivery.all().filter((s) => s.lastPulseAt < deadline)) {
      counters.expiredSubscriptions++;
      this.core.logStep('expired', sub.info);
      await this.lifecycle.leave(sub.id);
    }
    for (;;) {
      const expired = await this.records.takeExpired(expiryBatch);
      for (const info of expired) {
        counters.expiredSubscriptions++;
        this.core.logStep('expired', info);
        await this.lifecycle.retire(info);
      }
      if (expired.length < expiryBatch) break;
    }
  }
}
