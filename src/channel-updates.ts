import { checkChannel, checkChannelCount } from './arguments.js';
import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import { nextChannels, withChannels, type Records, type VersionedRecord } from './records.js';
import type { EventSubscription } from './subscription.js';

/**
 * Channel changes of a live or detached subscription, wherever it is: the
 * server that holds its stream applies them (topics, record, `onUpdate`,
 * `cmd.onUpdate`); a detached one's record is changed where the request
 * landed.
 */
export class ChannelUpdates {
  constructor(
    private readonly core: Core,
    private readonly records: Records,
    private readonly delivery: Delivery,
  ) {}

  /**
   * Applies both lists in one change (removals first, as ServiceStack does)
   * and sends one `cmd.onUpdate` to the old and new channels. Returns
   * `false` for an unknown id.
   */
  async update(subscriptionId: string, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<boolean> {
    [...subscribe, ...unsubscribe].forEach(checkChannel);
    const max = this.core.settings.maxChannelsPerSubscription;
    const sub = this.delivery.get(subscriptionId);
    if (sub) {
      checkChannelCount(nextChannels(sub.channels, subscribe, unsubscribe), max);
      await this.apply(sub, subscribe, unsubscribe);
      return true;
    }
    const current = await this.records.readVersioned(subscriptionId);
    if (!current) return false;
    checkChannelCount(nextChannels(current.info.channels, subscribe, unsubscribe), max);
    return this.updateRecorded(current, subscribe, unsubscribe);
  }

  /** The change, for the subscription a record names: sent to its stream's server, or made to the record of a detached one. */
  private async updateRecorded(current: VersionedRecord, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<boolean> {
    if (current.info.detached) return this.updateDetached(current, subscribe, unsubscribe);
    await this.delivery.sendControl(current.info, { kind: 'channels', subscribe: [...subscribe], unsubscribe: [...unsubscribe] });
    return true;
  }

  /** The change, on the server that holds the stream. */
  async apply(sub: EventSubscription, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<void> {
    const before = [...sub.channels];
    const after = nextChannels(before, subscribe, unsubscribe);
    if (after.length === before.length && after.every((c) => before.includes(c))) return;

    sub.setChannels(after);
    await this.delivery.changeChannels(sub, after.filter((c) => !before.includes(c)), before.filter((c) => !after.includes(c)));
    // An unregister may have run meanwhile: the record is then gone, and must not come back.
    if (!this.delivery.isHeld(sub) || !(await this.records.update(sub.info))) {
      // A resume took it to another stream meanwhile: the change goes to wherever it is now.
      const now = await this.records.readVersioned(sub.id);
      if (now && now.info.connectionId !== sub.info.connectionId) await this.updateRecorded(now, subscribe, unsubscribe);
      return;
    }
    await this.core.runHook(this.core.options.onUpdate, sub);
    if (this.core.settings.notifyChannelOfSubscriptions) {
      await this.delivery.notifyChannels([...new Set([...before, ...after])], 'cmd.onUpdate', sub.metaJson);
    }
  }

  /** No stream holds it: change the record itself (conditionally), and tell the channels. */
  private async updateDetached(current: VersionedRecord, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<boolean> {
    const before = current.info.channels;
    const updated = withChannels(current.info, nextChannels(before, subscribe, unsubscribe));
    if (!(await this.records.replace(current, updated))) {
      // Changed meanwhile (resumed, updated or removed): try again from the current state.
      return this.update(current.info.id, subscribe, unsubscribe);
    }
    if (this.core.settings.notifyChannelOfSubscriptions) {
      await this.delivery.notifyChannels([...new Set([...before, ...updated.channels])], 'cmd.onUpdate', JSON.stringify(updated.meta));
    }
    return true;
  }
}
