import type { BrokerStatus } from './broker.js';
import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import type { GuardedBroker } from './guarded-broker.js';
import type { Leases } from './leases.js';
import type { ServerRegistry } from './servers.js';

/**
 * What this server does when its broker goes away and comes back. "Away" is
 * a lost connection (the adapter says so) or a stall: a call or a ping that
 * did not finish within the bound (a frozen broker, a paused VM, a network
 * cut that leaves the TCP connections open). Both are handled alike.
 *
 * While it is away the streams stay open, heartbeats to them are still
 * taken here, notifications fail at once with 503, live events are held
 * back, and the sweep pauses. Once it answers again, before any sweep may
 * remove anything, this server writes its registration and its records
 * again (each lease fresh: the broker's clock moved on while nobody could
 * renew, or the broker restarted empty), subscribes its topics again, and
 * sends every stream what it missed from the history, or `cmd.onReset`.
 * Only then does the sweep resume, and other servers wait a little longer
 * before they may adopt one that did not come back.
 */
export class Outages {
  private adapterConnected = true;
  private down = false;
  private recovery: Promise<void> | undefined;

  constructor(
    private readonly core: Core,
    private readonly broker: GuardedBroker,
    private readonly delivery: Delivery,
    private readonly leases: Leases,
    private readonly servers: ServerRegistry,
  ) {
    broker.onStatus((status) => this.adapterStatus(status));
    broker.watch({
      stalled: (reason) => this.lost(`not answering: ${reason}`),
      answering: () => this.maybeBack(),
    });
  }

  /** False while the broker is away, and until this server has restored its state after it came back. */
  get brokerAvailable(): boolean {
    return !this.down && this.recovery === undefined;
  }

  private adapterStatus(status: BrokerStatus): void {
    this.adapterConnected = status.connected;
    if (!status.connected) this.lost(status.reason ?? 'connection closed');
    else this.maybeBack();
  }

  private lost(reason: string): void {
    if (this.down) return;
    this.down = true;
    this.core.counters.brokerOutages++;
    // Whatever arrives after it comes back waits until the catch-up has written what came before it.
    this.delivery.holdEvents();
    this.core.logger.warn(`server-events: lost the ${this.broker.name} broker (${reason}); keeping ${this.delivery.size} streams open and retrying`);
  }

  private maybeBack(): void {
    if (!this.down || !this.adapterConnected || this.broker.isStalled) return;
    this.down = false;
    const recovery: Promise<void> = this.recover()
      .catch((error) => {
        this.core.reportError(error);
        // Try again on the next sign of life: the broker may have gone again mid-way.
        this.lost(`restoring state failed: ${(error as Error).message}`);
      })
      .finally(() => {
        if (this.recovery === recovery) this.recovery = undefined;
      });
    this.recovery = recovery;
  }

  private async recover(): Promise<void> {
    this.core.logger.warn(`server-events: the ${this.broker.name} broker is back; restoring the leases of ${this.delivery.size} streams`);
    this.servers.brokerRecovered();
    // Taken for dead meanwhile, another server retired what of ours had expired (and announced it): those streams end.
    // Missing altogether, the broker lost its data: everything is written again as it is.
    const registration = await this.servers.registration();
    await this.leases.restore(registration === 'missing');
    await this.servers.register();
    await this.delivery.retryTopics().catch((error) => this.core.reportError(error));
    await this.delivery.catchUp();
  }
}
