import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import { BrokerUnavailableError } from './guarded-broker.js';
import type { Leases } from './leases.js';
import type { Records } from './records.js';
import { topics } from './topics.js';
import type { Lifecycle } from './lifecycle.js';
import type { ServerRegistry } from './servers.js';

/**
 * The sweep, on a timer: renews this server's registration and the leases
 * of its heartbeating streams (see `Leases`), and removes
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
    private readonly leases: Leases,
    private readonly records: Records,
    /** False while the broker is away (or this server is still restoring its state): nothing may be removed then. */
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
      // A sweep cut short by an outage is not an error of its own: the outage was logged once already.
      .catch((error) => {
        if (!(error instanceof BrokerUnavailableError)) this.core.reportError(error);
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async sweep(): Promise<void> {
    // The outage was logged once already.
    if (!this.brokerAvailable()) return;
    const { counters, settings } = this.core;
    await this.servers.register();
    await this.leases.renew();
    const deadline = Date.now() - settings.idleTimeoutMs;
    for (const sub of this.delivery.all().filter((s) => s.lastPulseAt < deadline)) {
      counters.expiredSubscriptions++;
      this.core.logStep('expired', sub.info);
      await this.lifecycle.leaveOwn(sub);
    }
    await this.lifecycle.expireDetached();
    await this.sweepOrphans();
    await this.servers.sweepOthers();
  }

  /**
   * The safety net: a record listed under this server that it neither holds
   * nor watches (left behind by a race between a stream's end and a change
   * to its record) is retired once its lease runs out, like any other.
   */
  private async sweepOrphans(): Promise<void> {
    for await (const ids of this.records.members(topics.server(this.core.serverId))) {
      const unknown = ids.filter((id) => !this.lifecycle.holds(id));
      if (unknown.length === 0) continue;
      for (const info of await this.records.takeExpired(unknown)) {
        this.core.counters.expiredSubscriptions++;
        this.core.logStep('expired', info);
        await this.lifecycle.retire(info);
      }
    }
  }
}
