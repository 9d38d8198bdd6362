import type { Core } from './core.js';
import { eachLimited } from './limited.js';
import type { Delivery } from './delivery.js';
import type { Lifecycle } from './lifecycle.js';
import type { Records } from './records.js';
import type { EventSubscription } from './subscription.js';

/** Leases renewed per broker call: one script per batch on Redis. */
const renewalBatch = 128;

/**
 * The leases of this server's own subscriptions. A heartbeat to a stream
 * held here is taken here, without the broker (so heartbeats go on while the
 * broker is frozen or cut off); the leases in the broker follow in one batch
 * per housekeeping run, each set to end an idle timeout after that stream's
 * last heartbeat, so that a listing never shows one whose client stopped.
 *
 * A lease that could not be renewed is reconciled, never guessed at: one
 * that ran out (the broker stalled, or this server was too busy to renew) is
 * taken back and written again, since its client is still heartbeating here;
 * one whose record is gone was removed by another server (an unregister
 * whose close this server missed, or a sweep that took this server for
 * dead), which announced the leave, so the stream ends.
 */
export class Leases {
  constructor(
    private readonly core: Core,
    private readonly records: Records,
    private readonly delivery: Delivery,
    private readonly lifecycle: Lifecycle,
  ) {}

  /** Renews, in one batch, the lease of every stream here that heartbeated since its lease was last written. */
  async renew(): Promise<void> {
    const now = Date.now();
    const idle = this.core.settings.idleTimeoutMs;
    const due = this.delivery.all().filter((sub) => sub.lastPulseAt > sub.leasedFromPulseAt && sub.lastPulseAt + idle > now);
    const batches: EventSubscription[][] = [];
    for (let i = 0; i < due.length; i += renewalBatch) batches.push(due.slice(i, i + renewalBatch));
    await eachLimited(batches, async (batch) => {
      const pulses = batch.map((sub) => sub.lastPulseAt);
      const renewed = await this.records.renewMany(
        batch.map((sub) => sub.id),
        pulses.map((pulse) => pulse + idle - Date.now()),
      );
      const lapsed = batch.filter((sub, i) => {
        if (renewed[i]) sub.leasedFromPulseAt = pulses[i]!;
        return !renewed[i];
      });
      await eachLimited(lapsed, (sub) => this.reconcile(sub));
    });
  }

  /**
   * After an outage: every stream here gets its lease back, and so does
   * every subscription detached here that is still the one that went away
   * here (see `Lifecycle.restoreDetached`). `brokerLostData` when the broker
   * came back without this server's registration (it restarted empty): then
   * every record is written again as it is.
   */
  async restore(brokerLostData: boolean): Promise<void> {
    await eachLimited(this.delivery.all(), (sub) => (brokerLostData ? this.write(sub) : this.renewOrReconcile(sub)));
    await eachLimited(this.lifecycle.detachedRecords(), (info) => (brokerLostData ? this.records.write(info) : this.lifecycle.restoreDetached(info.id)));
  }

  private async renewOrReconcile(sub: EventSubscription): Promise<void> {
    if (await this.records.renew(sub.id, this.core.settings.idleTimeoutMs)) sub.leasedFromPulseAt = sub.lastPulseAt;
    else await this.reconcile(sub);
  }

  /** A lease that could not be renewed: taken back and written again if it ran out, or the stream ends if the record is gone. */
  private async reconcile(sub: EventSubscription): Promise<void> {
    const [lapsed] = await this.records.takeExpired([sub.id]);
    if (lapsed && lapsed.connectionId === sub.info.connectionId) return this.write(sub);
    if (lapsed) {
      // Resumed by a stream elsewhere (whose close this server missed), and that lease ran out too: it left.
      this.core.counters.expiredSubscriptions++;
      await this.lifecycle.retire(lapsed);
      if (this.delivery.isHeld(sub)) await this.lifecycle.endRetired(sub);
      return;
    }
    // Renewed by someone else meanwhile, or not there at all.
    if ((await this.records.read(sub.id)) === undefined && this.delivery.isHeld(sub)) await this.lifecycle.endRetired(sub);
  }

  private async write(sub: EventSubscription): Promise<void> {
    await this.records.write(sub.info);
    sub.leasedFromPulseAt = sub.lastPulseAt;
  }
}
