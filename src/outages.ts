import type { BrokerStatus } from './broker.js';
import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import type { Lifecycle } from './lifecycle.js';
import type { Records } from './records.js';
import type { ServerRegistry } from './servers.js';

/**
 * What this server does when its broker goes away and comes back. While it
 * is away the streams stay open, notifications fail, and live events are
 * held back; once it is back, this server's records are written again (the
 * backend may have restarted empty), its topics subscribed again, and every
 * stream is sent what it missed from the history, or `cmd.onReset`.
 */
export class Outages {
  private down = false;

  constructor(
    private readonly core: Core,
    private readonly records: Records,
    private readonly delivery: Delivery,
    private readonly lifecycle: Lifecycle,
    private readonly servers: ServerRegistry,
  ) {}

  /** False while the broker connection is lost. */
  get brokerAvailable(): boolean {
    return !this.down;
  }

  statusChanged(status: BrokerStatus): void {
    const { broker, logger, counters } = this.core;
    if (!status.connected) {
      if (this.down) return;
      this.down = true;
      counters.brokerOutages++;
      // Whatever arrives after the reconnect waits until the catch-up has written what came before it.
      this.delivery.holdEvents();
      logger.warn(`server-events: lost the ${broker.name} broker (${status.reason ?? 'connection closed'}); keeping ${this.delivery.size} streams open and retrying`);
      return;
    }
    if (!this.down) return;
    this.down = false;
    const detached = this.lifecycle.detachedRecords();
    logger.warn(`server-events: the ${broker.name} broker is back; restoring ${this.delivery.size + detached.length} presence records`);
    this.servers.brokerRecovered();
    void Promise.all([
      this.servers.register(),
      ...this.delivery.all().map((sub) => this.records.write(sub.info)),
      ...detached.map((info) => this.records.write(info)),
      this.delivery
        .retryTopics()
        .catch((error) => this.core.reportError(error))
        .then(() => this.delivery.catchUp()),
    ]).catch((error) => this.core.reportError(error));
  }
}
