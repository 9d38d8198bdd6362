import type { PresenceStore } from './broker.js';
import type { Core } from './core.js';
import type { Lifecycle } from './lifecycle.js';
import { serverRecordId, serversIndex, type Records } from './records.js';
import { topics } from './topics.js';

/** A server's registration, as it is stored. */
interface Registration {
  serverId: string;
  /** Set when another server took over the sweep of a server that died. */
  adoptedBy?: string;
  /** Set once the adopter swept every subscription of it: kept, unlisted, so that a server cut off that long learns it was retired. */
  swept?: true;
}

/** How long a swept server's registration is kept (on NATS at most the presence bucket's age limit, an hour by default). */
const sweptKeptMs = 24 * 3_600_000;

/**
 * Who is in the cluster, and who sweeps up after a server that died.
 *
 * Every server registers itself in the presence store (under the index
 * `servers`) and renews the registration on each housekeeping run. A server
 * sweeps its own subscriptions from what it knows (its streams, the
 * subscriptions detached from them). A server whose registration lapsed died
 * or was cut off: exactly one other server takes the lapsed registration
 * (the store hands it to one caller) and registers it again as its adopter,
 * then sweeps that server's subscriptions as their leases run out,
 * announcing each leave, until none is left. An adopter that dies lets its
 * adoptions lapse with its own registration, and others take them over.
 * Only a subscription whose own lease ran out is ever removed, so adopting a
 * server that is only slow costs nothing but a look.
 */
export class ServerRegistry {
  private readonly adopted = new Set<string>();
  /** Lapsed registrations are left alone until then: after an outage, every live server gets to renew its own first. */
  private adoptAfter = 0;

  constructor(
    private readonly core: Core,
    private readonly presence: PresenceStore,
    private readonly records: Records,
    private readonly lifecycle: Lifecycle,
  ) {}

  /** How long a registration lasts unless renewed: a few housekeeping runs. */
  get leaseMs(): number {
    return 3 * this.core.settings.houseKeepingIntervalMs;
  }

  /** Writes (or renews) this server's registration. */
  async register(): Promise<void> {
    await this.write({ serverId: this.core.serverId });
  }

  /** Removes this server's registration on a clean stop, unless it leaves subscriptions for an adopter to sweep. */
  async deregister(leavesSubscriptions: boolean): Promise<void> {
    if (!leavesSubscriptions) await this.presence.remove(serverRecordId(this.core.serverId));
  }

  /**
   * This server's registration as the broker has it, after an outage:
   * `ours`, `adopted` by another server (this one was cut off long enough to
   * be taken for dead; perhaps swept already), or `missing` (the broker
   * restarted empty). A lapsed one of its own is written again at once, so
   * that a recovery cut short and tried again still finds it.
   */
  async registration(): Promise<'ours' | 'adopted' | 'missing'> {
    const id = serverRecordId(this.core.serverId);
    const live = await this.presence.get(id);
    const found = live ?? (await this.presence.takeExpired([id]))[0];
    if (found === undefined) return 'missing';
    const { adoptedBy } = JSON.parse(found) as Registration;
    if (adoptedBy !== undefined && adoptedBy !== this.core.serverId) return 'adopted';
    if (live === undefined) await this.register();
    return 'ours';
  }

  /** The broker was away: registrations may have lapsed everywhere, so wait until live servers have renewed theirs. */
  brokerRecovered(): void {
    this.adoptAfter = Date.now() + 2 * this.core.settings.houseKeepingIntervalMs;
  }

  /** Takes over the lapsed registrations it can, then sweeps every server it adopted. */
  async sweepOthers(): Promise<void> {
    if (Date.now() >= this.adoptAfter) await this.adoptLapsed();
    for (const serverId of [...this.adopted]) await this.sweepAdopted(serverId);
  }

  private async adoptLapsed(): Promise<void> {
    for await (const ids of this.presence.members(serversIndex, 250)) {
      const others = ids.filter((id) => id !== serverRecordId(this.core.serverId));
      const live = await this.presence.getMany(others);
      const lapsed = others.filter((id) => !live.has(id));
      for (const record of await this.presence.takeExpired(lapsed)) {
        const { serverId } = JSON.parse(record) as Registration;
        this.core.logger.warn(`server-events: server ${serverId} stopped renewing its registration; ${this.core.serverId} sweeps its subscriptions`);
        this.adopted.add(serverId);
        await this.write({ serverId, adoptedBy: this.core.serverId });
      }
      // Registrations gone altogether (their last sweep finished) are unlisted.
      await this.presence.unlist(serversIndex, lapsed);
    }
  }

  /** Renews the adoption and retires whatever of the server's subscriptions expired; done when none is left. */
  private async sweepAdopted(serverId: string): Promise<void> {
    const id = serverRecordId(serverId);
    const current = await this.presence.get(id);
    // Renewed by the server itself (it was only slow), or adopted by someone else after a lapse of ours.
    if (current === undefined || (JSON.parse(current) as Registration).adoptedBy !== this.core.serverId) {
      this.adopted.delete(serverId);
      return;
    }
    await this.presence.touch(id, this.leaseMs);
    const index = topics.server(serverId);
    for await (const ids of this.records.members(index)) {
      for (const info of await this.records.takeExpired(ids)) {
        this.core.counters.expiredSubscriptions++;
        this.core.logStep('expired', info);
        await this.lifecycle.retire(info);
      }
    }
    // What is left: leases still running (their clients may resume elsewhere); ids without a record are unlisted on the way.
    let left = 0;
    for await (const batch of this.records.find(index, (info) => info.serverId === serverId)) left += batch.length;
    if (left === 0) {
      await this.presence.put(id, JSON.stringify({ serverId, adoptedBy: this.core.serverId, swept: true } satisfies Registration), [], sweptKeptMs);
      this.adopted.delete(serverId);
    }
  }

  private write(registration: Registration): Promise<void> {
    return this.presence.put(serverRecordId(registration.serverId), JSON.stringify(registration), [serversIndex], this.leaseMs);
  }
}
