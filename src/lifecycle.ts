import type { Core } from './core.js';
import type { Delivery } from './delivery.js';
import { DetachedSubscriptions } from './detached.js';
import { createRandomId, defaultProfileUrl, isAuthenticated, safeDisplayName, type Identity } from './identity.js';
import { Slots } from './limited.js';
import { buildMeta, recordWith, type Records, type SubscriptionInfo } from './records.js';
import { readMissed, writeMissed, type Missed } from './replay.js';
import type { EventSink, EventSubscription } from './subscription.js';
import { topicsOf } from './topics.js';

/**
 * The life of a subscription, and the one place where it changes state:
 *
 *     opening ──open──▶ live ──detach──▶ detached ──lease runs out──▶ left (cmd.onLeave)
 *        │               │  ▲               │
 *        │               │  └────resume─────┘   (on any server; no leave, no join)
 *        │               ├──leave──────────────────────────────────▶ left (cmd.onLeave)
 *        │               └──handOver (a resume took it to another stream: no leave)
 *        └──abandon (its client went away while opening: no join was sent, so no leave)
 *
 * | verb | from → to | announces |
 * |---|---|---|
 * | `open` | opening → live (new: `cmd.onJoin`; resumed: nothing) | join, unless resumed |
 * | `abandon` | opening → left | nothing: no join went out |
 * | `detach` | live → detached (the client went away) | nothing: it may come back |
 * | `open` with a resumable record | detached or live elsewhere → live here | nothing |
 * | `handOver` | live here → live on a newer stream | nothing |
 * | `leave` | live or detached → left (unregister, idle expiry, stop) | `cmd.onLeave` |
 * | `retire` | a record already removed (its lease ran out) → left | `cmd.onLeave` |
 * | `forgetAll` | every stream here → left (`reset`) | nothing |
 * | `endRetired` | a stream here whose record another server retired (it took this one for dead) → left | nothing: that server did |
 *
 * A `cmd.onLeave` is announced by whoever removed the record from the
 * presence store, which exactly one server does.
 */

/** What a stream request asks for, as the HTTP side read it. */
export interface OpenRequest {
  channels: string[];
  /** Who it is, from the `authenticate` hook; `{}` for anonymous users. */
  identity: Identity;
  sessionId: string;
  /** The client's address. */
  address: string;
  /** Check that resumed subscriptions come from the address that opened them. */
  validateUserAddress: boolean;
  /** The Last-Event-ID it sent, if any. */
  lastEventId?: number;
  /** The subscription it asks to resume (`resume={id}`). */
  resumeId?: string;
  /** The URLs for `cmd.onConnect` of subscription `id`. */
  urlsFor(id: string): { unRegisterUrl: string; heartbeatUrl: string; updateSubscriberUrl: string };
  /** The first of the channels a resumed subscription keeps that its user may no longer join, if any. */
  refuseKept?(channels: readonly string[]): Promise<string | undefined>;
  /** Called for a new subscription once built: may add meta or connect arguments. */
  onCreated?(sub: EventSubscription): void | Promise<void>;
  /** May edit the `cmd.onConnect` payload. */
  onConnect?(sub: EventSubscription, connectArgs: Record<string, string>): void | Promise<void>;
  /** The stream just started (its headers are out), before anything is replayed or announced. */
  onStreamOpened?(sub: EventSubscription): void;
  /** True once the client has gone away. */
  isGone(): boolean;
}

/** What came of a stream request: a live subscription, a channel its user may no longer join (403), or a client that went away. */
export type OpenOutcome = { opened: EventSubscription } | { refusedChannel: string } | { gone: true };

export class Lifecycle {
  private readonly departures = new Set<Promise<void>>();
  /** Subscriptions detached from a stream of this server, with the time their lease runs out: this server sweeps them. */
  private readonly detached = new DetachedSubscriptions();
  /** Streams registering now, at most `maxRegistrationsInFlight`; a client that leaves while it waits is not registered. */
  private readonly registering: Slots;

  constructor(
    private readonly core: Core,
    private readonly records: Records,
    private readonly delivery: Delivery,
  ) {
    this.registering = new Slots(core.settings.maxRegistrationsInFlight);
  }

  // ---- opening → live --------------------------------------------------------

  /**
   * Opens a stream: applies the continuity rule (resume an existing
   * subscription, or make a new one with an anonymous id when there is no
   * user), builds the record and the `cmd.onConnect` arguments, starts the
   * stream on `sink`, replays what the client missed and announces the join.
   */
  open(request: OpenRequest, sink: EventSink): Promise<OpenOutcome> {
    return this.registering.run(() => (request.isGone() ? Promise.resolve({ gone: true as const }) : this.openNow(request, sink)));
  }

  private async openNow(request: OpenRequest, sink: EventSink): Promise<OpenOutcome> {
    const resumable = await this.findResumable(request);
    if (resumable && request.refuseKept) {
      // A resumed subscription keeps its channels: they are asked about again, since access may have been taken away.
      const refused = await request.refuseKept(resumable.channels);
      if (refused !== undefined) return { refusedChannel: refused };
    }
    const info = resumable ? this.resumedRecord(resumable, request.address) : await this.newRecord(request);
    const sub = this.delivery.newSubscription(info, sink);
    if (!resumable) await request.onCreated?.(sub);
    const connectArgs = this.connectArgs(sub, request);
    await request.onConnect?.(sub, connectArgs);
    // What the client will go by, even if the hook changed it.
    sub.heartbeatIntervalMs = Number(connectArgs.heartbeatIntervalMs) || this.core.settings.heartbeatIntervalMs;
    if (request.isGone()) return { gone: true };
    if (resumable) {
      await this.takeOver(resumable);
      // Gone while taking over: the record is left detached, and expires unless the client comes back.
      if (request.isGone()) return { gone: true };
    }
    sink.open();
    sink.onClose(() => this.detach(sub));
    request.onStreamOpened?.(sub);
    await this.register(sub, connectArgs, { lastEventId: request.lastEventId, from: resumable });
    return { opened: sub };
  }

  /**
   * The continuity rule: a stream request takes over an existing
   * subscription when it names it with `resume={id}`, or, for a browser's
   * own EventSource reconnect, when it carries a Last-Event-ID and its
   * session has exactly that channel list in a detached subscription; in
   * both cases only from the same user (the same authenticated user id, or
   * for anonymous users the same session) and, with `validateUserAddress`,
   * the same address.
   */
  private async findResumable(request: OpenRequest): Promise<SubscriptionInfo | undefined> {
    let info: SubscriptionInfo | undefined;
    if (request.resumeId) info = await this.records.read(request.resumeId);
    else if (request.lastEventId !== undefined) info = await this.records.detachedOf(request.sessionId, request.channels);
    if (!info) return undefined;
    const sameUser =
      request.identity.userId !== undefined
        ? info.isAuthenticated && info.userId === request.identity.userId
        : !info.isAuthenticated && info.sessionId === request.sessionId;
    const sameAddress = !request.validateUserAddress || info.userAddress === request.address;
    return sameUser && sameAddress ? info : undefined;
  }

  /** The record a resumed subscription continues with: its own, on this server and a new stream. */
  private resumedRecord(resumable: SubscriptionInfo, address: string): SubscriptionInfo {
    const { detached: _detached, ...kept } = resumable;
    return recordWith(kept, { serverId: this.core.serverId, userAddress: address, connectionId: createRandomId() });
  }

  /** A new subscription's record; an anonymous user gets the next `-N` id and `userN` name of the cluster. */
  private async newRecord(request: OpenRequest): Promise<SubscriptionInfo> {
    const { identity } = request;
    let userId = identity.userId;
    let displayName = safeDisplayName(identity);
    if (userId === undefined) {
      const n = await this.core.broker.nextSequence('anonUser');
      userId = `-${n}`;
      displayName ??= `user${n}`;
    }
    const base = {
      id: createRandomId(),
      userId,
      userName: identity.userName,
      displayName: displayName ?? userId,
      sessionId: request.sessionId,
      channels: request.channels,
      createdAt: Date.now(),
      isAuthenticated: isAuthenticated(identity),
      profileUrl: identity.profileUrl ?? defaultProfileUrl,
      userAddress: request.address,
      serverId: this.core.serverId,
      connectionId: createRandomId(),
    };
    return recordWith(base, { meta: buildMeta(base) });
  }

  /** `cmd.onConnect`'s all-string map: the meta, the hooks' additions, the URLs and the timers. */
  private connectArgs(sub: EventSubscription, request: OpenRequest): Record<string, string> {
    // Assigned, not spread: see `recordWith`.
    return Object.assign({}, sub.info.meta, sub.addedConnectArgs, { id: sub.id }, request.urlsFor(sub.id), {
      heartbeatIntervalMs: String(this.core.settings.heartbeatIntervalMs),
      idleTimeoutMs: String(this.core.settings.idleTimeoutMs),
    });
  }

  /**
   * Ends the stream that holds a subscription now, wherever it is, without
   * announcing a departure: a client is resuming it on a new stream.
   */
  private async takeOver(info: SubscriptionInfo): Promise<void> {
    const local = this.delivery.get(info.id);
    if (local) await this.delivery.drop(local);
    else if (!info.detached) await this.delivery.sendControl(info, { kind: 'close', connectionId: info.connectionId });
  }

  /**
   * Makes the stream live: writes `cmd.onConnect`, replays what the client
   * missed after `lastEventId` (or sends `cmd.onReset` when that cannot be
   * known), runs `onSubscribe`, then sends `cmd.onJoin` to every member of
   * each of its channels, itself included, unless it resumed a subscription
   * its channels never saw leave.
   */
  private async register(
    sub: EventSubscription,
    connectArgs: Record<string, string>,
    resume: { lastEventId?: number; from?: SubscriptionInfo },
  ): Promise<void> {
    const { broker, counters, settings } = this.core;
    const resumed = resume.from !== undefined;
    // A stream of the same subscription here (a second resume racing the first) ends first, as a departure.
    const replaced = this.delivery.get(sub.id);
    if (replaced && replaced !== sub) await this.endStream(replaced, true);
    this.delivery.adopt(sub);
    this.detached.delete(sub.id);
    counters.totalConnections++;
    const history = broker.history;
    // Live events wait until the replay before them is written.
    sub.hold();
    let head: number | undefined;
    let missed: Missed = { entries: [] };
    let abandoned = false;
    try {
      if (!resume.from) {
        // A new subscription's round trips go out together: the head (where its stream begins), its record and its topics.
        const [readHead] = await settleAll([history && resume.lastEventId === undefined ? history.head() : undefined, this.records.write(sub.info), this.delivery.listen(sub)]);
        head = readHead;
      } else if (!(await this.claim(resume.from, sub))) {
        // It left (its lease ran out, or it was unregistered) or another stream took it while this one was set up.
        this.core.logStep('resume lost', sub.info);
        return await this.endStream(sub, false);
      } else await this.delivery.listen(sub);
      abandoned = sub.isClosed;
      if (!abandoned && resume.lastEventId !== undefined) missed = await readMissed(history, sub, new Set(topicsOf(sub.info)), resume.lastEventId);
    } catch (error) {
      // Without the broker the subscription cannot work: end the stream so the client retries.
      await this.delivery.drop(sub).catch(() => {});
      await this.records.remove(sub.id).catch(() => {});
      throw error;
    }
    if (abandoned) return this.abandon(sub, resumed);
    if (resume.lastEventId !== undefined) {
      // Channel events are replayed, but what was sent to the old subscription or user id cannot be.
      if (!resumed) missed.gap ??= 'a new subscription: events sent to the previous one cannot be replayed';
    } else {
      if (head !== undefined) sub.beginAfter(head);
      if (resumed) missed.gap = 'resumed without a Last-Event-ID';
    }
    sub.coveredToEventId = Math.max(sub.coveredToEventId, resume.lastEventId ?? sub.lastEventId);
    sub.send('cmd.onConnect', JSON.stringify(connectArgs));
    this.delivery.countMissed(writeMissed(sub, missed, resume.lastEventId), missed);
    sub.release();
    if (resumed) counters.resumedSubscriptions++;
    this.core.logStep(resumed ? 'resumed' : 'opened', sub.info, { lastEventId: resume.lastEventId, replayed: missed.entries.length, gap: missed.gap });
    await this.core.runHook(this.core.options.onSubscribe, sub);
    if (settings.notifyChannelOfSubscriptions && !resumed) await this.delivery.notifyChannels(sub.channels, 'cmd.onJoin', sub.metaJson);
  }

  /**
   * Writes a resumed subscription's record over the one it resumes, only if
   * that is still there, live, and of the same stream as when it was found:
   * a record retired or taken by another stream meanwhile is never brought
   * back. The client then reconnects, and gets a new subscription.
   */
  private async claim(found: SubscriptionInfo, sub: EventSubscription): Promise<boolean> {
    // The stream it replaces may still be detaching it (the same stream, marked detached): that race is retried.
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.records.readVersioned(sub.id);
      if (!current || current.info.connectionId !== found.connectionId) return false;
      // A channel change made to the record since it was found stands (its topics are listened to after the claim).
      sub.setChannels(current.info.channels);
      if (await this.records.replace(current, sub.info)) return true;
    }
    return false;
  }

  // ---- opening → left ---------------------------------------------------------

  /**
   * The client left while its registration was under way: forget the
   * stream here. A new subscription's record goes too, if it still names
   * this stream (its client never learned the id), with no leave, since no
   * join went out. A resumed one stays, detached by the close, for the
   * client to resume again; and a newer stream (the client resuming at once)
   * keeps what is its own.
   */
  private async abandon(sub: EventSubscription, resumed: boolean): Promise<void> {
    await this.endStream(sub, true);
    if (resumed) return;
    const current = await this.records.read(sub.id);
    if (current?.connectionId === sub.info.connectionId) await this.records.remove(sub.id);
  }

  // ---- live → detached ---------------------------------------------------------

  /**
   * The client of a stream here went away. The subscription is detached, not
   * removed: its record stays (listed, its lease running) so that the client
   * can resume it on any server within the idle timeout, without its
   * channels seeing it leave and join again. If it does not come back, the
   * lease runs out and `cmd.onLeave` goes out then. Runs in the background,
   * tracked so that `settle()` (and so `stop()`) waits for it.
   */
  detach(sub: EventSubscription): void {
    sub.close();
    // Already ended by this server (the close is the echo of its own end()).
    if (!this.delivery.isHeld(sub)) return;
    this.core.logStep('detached', sub.info);
    const departure = this.markDetached(sub)
      .catch((error) => this.core.reportError(error, sub))
      .finally(() => this.departures.delete(departure));
    this.departures.add(departure);
  }

  private async markDetached(sub: EventSubscription): Promise<void> {
    // Swept from the moment its stream goes: a sender may still find this server for it, even once a resume elsewhere has it.
    this.watchDetached(recordWith(sub.info, { detached: true }));
    await this.endStream(sub, false);
    // A channel update may change the record between the read and the write: read again and retry.
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.records.readVersioned(sub.id);
      // Its lease ran out before its client left (a client that never heartbeats): it expires now.
      if (!current) return this.expireLapsed(sub);
      // Resumed elsewhere meanwhile: the record is no longer this stream's (the sweep lets go once it sees that).
      if (current.info.connectionId !== sub.info.connectionId) return;
      const detached = recordWith(current.info, { detached: true });
      // Conditional, so an unregister or a resume landing meanwhile wins.
      if (await this.records.replace(current, detached)) {
        this.watchDetached(detached);
        return;
      }
    }
    // Still this stream's, but not marked: the sweep entry made above keeps it from lingering.
  }

  /** Puts a subscription in this server's sweep of detached ones, due an idle timeout from now. */
  private watchDetached(info: SubscriptionInfo): void {
    this.detached.set(info.id, { info, expiresAt: Date.now() + this.core.settings.idleTimeoutMs });
  }

  /** Retires the record of a stream that just went away if its lease had already run out (one leave, as any expiry). */
  private async expireLapsed(sub: EventSubscription): Promise<void> {
    const [lapsed] = await this.records.takeExpired([sub.id]);
    if (!lapsed) return;
    this.core.counters.expiredSubscriptions++;
    this.core.logStep('expired', lapsed);
    await this.retire(lapsed);
  }

  /**
   * Retires the subscriptions detached here whose lease ran out, with
   * `cmd.onLeave`. One that was renewed or resumed meanwhile is left to
   * whoever holds it now.
   */
  async expireDetached(): Promise<void> {
    const now = Date.now();
    const due = [...this.detached].filter(([, d]) => d.expiresAt <= now).map(([id]) => id);
    if (due.length === 0) return;
    for (const info of await this.records.takeExpired(due)) {
      this.detached.delete(info.id);
      this.core.counters.expiredSubscriptions++;
      this.core.logStep('expired', info);
      await this.retire(info);
    }
    for (const id of due.filter((i) => this.detached.has(i))) {
      const current = await this.records.read(id);
      const entry = this.detached.get(id)!;
      if (current && current.serverId === this.core.serverId && current.connectionId === entry.info.connectionId) {
        // Still the record of the stream that went away here (its lease was renewed, by a channel update say): look again later.
        entry.expiresAt = now + this.core.settings.idleTimeoutMs;
      } else {
        // Resumed elsewhere, or removed.
        this.detached.delete(id);
      }
    }
  }

  /**
   * After an outage, a subscription detached here keeps its lease only while
   * its record is still the one that went away here. One removed meanwhile
   * (unregistered, its leave announced by whoever removed it) or resumed
   * elsewhere is forgotten, never written back; one whose lease ran out
   * during the outage is written again, and expires here as it would have.
   */
  async restoreDetached(id: string): Promise<void> {
    const entry = this.detached.get(id);
    if (!entry) return;
    const stillHere = (info: SubscriptionInfo) => info.serverId === this.core.serverId && info.connectionId === entry.info.connectionId;
    const current = await this.records.read(id);
    if (current) {
      if (stillHere(current)) await this.records.renew(id);
      else this.detached.delete(id);
      return;
    }
    const [lapsed] = await this.records.takeExpired([id]);
    if (!lapsed) this.detached.delete(id);
    else if (stillHere(lapsed)) await this.records.write(lapsed);
    else {
      // Resumed elsewhere, and that lease ran out as well: it has left.
      this.core.counters.expiredSubscriptions++;
      await this.retire(lapsed);
    }
  }

  /** The records of the subscriptions detached here, to write again after the broker restarted empty. */
  detachedRecords(): SubscriptionInfo[] {
    return [...this.detached.values()].map((d) => d.info);
  }

  /** How many subscriptions detached here still wait for their client or their lease. */
  get detachedCount(): number {
    return this.detached.size;
  }

  /** True when a subscription detached here belongs to the private audience `topic` (see `DetachedSubscriptions`). */
  sweepsAudience(topic: string): boolean {
    return this.detached.inAudience(topic);
  }

  /** True while this server holds the subscription: its stream is here, or it was detached here. */
  holds(id: string): boolean {
    return this.delivery.get(id) !== undefined || this.detached.has(id);
  }

  // ---- live here → live on another stream ---------------------------------------

  /**
   * A resume on another stream asked this one to end (or a server that
   * removed the record did); a close names its stream, so a newer one here
   * stays. The subscription stays in this server's sweep as if detached
   * until the record is seen to be someone else's or gone: a resume can
   * still fail after this (its client went away, or its lease ran out
   * first), and then the leave is this server's to announce.
   */
  async handOver(sub: EventSubscription, connectionId: string | undefined): Promise<void> {
    if (connectionId !== undefined && connectionId !== sub.info.connectionId) return;
    // Swept before its stream goes, so that nothing for it reaches this inbox unpassed in between.
    this.watchDetached(recordWith(sub.info, { detached: true }));
    await this.endStream(sub, false);
  }

  // ---- live or detached → left ---------------------------------------------------

  /**
   * Removes a subscription held by any server: its stream ends and its
   * channels get `cmd.onLeave`. Returns its record, or `undefined` when no
   * such subscription exists (or another server removed it first).
   */
  async leave(subscriptionId: string): Promise<SubscriptionInfo | undefined> {
    const info = await this.records.remove(subscriptionId);
    if (!info) {
      // Another server removed and announced it; a stream still here is ended quietly.
      const sub = this.delivery.get(subscriptionId);
      if (sub) await this.endStream(sub, true);
      return undefined;
    }
    await this.retire(info);
    return info;
  }

  /**
   * Ends a stream of this server's own accord (it stops, or the stream's
   * client went silent): the subscription leaves, unless a resume has just
   * taken its record to another stream, which keeps it. The record is read
   * first, so only a resume landing between that read and the removal can
   * still lose it.
   */
  async leaveOwn(sub: EventSubscription): Promise<void> {
    const current = await this.records.read(sub.id);
    if (current && current.connectionId !== sub.info.connectionId) return this.handOver(sub, undefined);
    await this.leave(sub.id);
  }

  /** A record this server removed (unregistered, or taken because its lease ran out): end its stream wherever it is, and announce the leave. */
  async retire(info: SubscriptionInfo): Promise<void> {
    this.detached.delete(info.id);
    this.core.counters.totalUnsubscriptions++;
    this.core.logStep('left', info);
    const sub = this.delivery.get(info.id);
    if (sub) await this.endStream(sub, true);
    else await this.delivery.sendControl(info, { kind: 'close', connectionId: info.connectionId });
    if (this.core.settings.notifyChannelOfSubscriptions) await this.delivery.notifyChannels(info.channels, 'cmd.onLeave', JSON.stringify(info.meta));
  }

  /**
   * Ends a stream whose record another server removed and announced (it
   * took this server for dead): no leave from here, the client reconnects.
   */
  async endRetired(sub: EventSubscription): Promise<void> {
    this.core.logStep('retired elsewhere', sub.info);
    await this.endStream(sub, true);
  }

  /** Forgets every subscription on this server without announcing it: streams end, records go, no `cmd.onLeave`. */
  async forgetAll(): Promise<void> {
    await Promise.all(
      this.delivery.all().map(async (sub) => {
        await this.records.remove(sub.id);
        await this.endStream(sub, true);
      }),
    );
  }

  /** Waits for detaches still under way. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.departures);
  }

  /** Ends a stream here; `unsubscribed` when the subscription is over (so `onUnsubscribe` runs), not when it lives on elsewhere. */
  private async endStream(sub: EventSubscription, unsubscribed: boolean): Promise<void> {
    const wasCurrent = await this.delivery.drop(sub);
    if (wasCurrent && unsubscribed) await this.core.runHook(this.core.options.onUnsubscribe, sub);
  }
}

/**
 * Waits for every one of `calls`, as `Promise.all` does, but rejects only
 * once all have settled: what is undone after a failure must not race a
 * write still under way.
 */
async function settleAll<T extends readonly unknown[]>(calls: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const outcomes = await Promise.allSettled(calls);
  const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return outcomes.map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}
