import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import type { Lifecycle } from './lifecycle.js';
import type { ServerRegistry } from './servers.js';

/**
 * The sweep, on a timer: renews this server's registration, and removes
 * subscriptions whose last heartbeat is older than the idle timeout: this
 * server's streams, the subscriptions detached here whose clients never came
 * back, and those of servers that died (see `ServerRegistry`). Each leave is
 * announced once, by whoever removed the record. Every part costs what this
 * server holds, not what the cluster holds.
 */
export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly core: Core,
    private readonly delivery: Delivery,
    private readonly lifecycle: Lifecycle,
    private readonly servers: ServerRegistry,
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
    await this.servers.register();
    const deadline = Date.now() - settings.idleTimeoutMs;
    for (const sub of this.delivery.all().filter((s) => s.lastPulseAt < deadline)) {
      counters.expiredSubscriptions++;
      this.core.logStep('expired', sub.info);
      await this.lifecycle.leave(sub.id);
    }
    await this.lifecycle.expireDetached();
    await this.servers.sweepOthers();
  }
}
