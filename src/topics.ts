import type { Broker } from './broker.js';
import type { SubscriptionInfo } from './records.js';

/**
 * Broker topic names. Each kind of audience has a topic of its own, so a
 * server subscribes only to the channels, users, sessions and subscriptions
 * its own connections hold. Names are percent-encoded, including `.`, `*` and
 * `>`, so every topic is a safe Redis channel and a two-token NATS subject
 * whatever characters a channel or user name contains.
 */
export const topics = {
  all: 'all',
  channel: (name: string) => `ch.${encodeName(name)}`,
  userId: (userId: string) => `uid.${encodeName(userId)}`,
  userName: (userName: string) => `uname.${encodeName(userName)}`,
  session: (sessionId: string) => `sess.${encodeName(sessionId)}`,
  subscription: (id: string) => `sub.${encodeName(id)}`,
  /** A server's own audience: its streams (presence uses it to find a server's subscriptions). */
  server: (serverId: string) => `srv.${encodeName(serverId)}`,
};

/** Every topic a subscription listens on: all, itself, its user, user name, session and channels. */
export function topicsOf(info: SubscriptionInfo): string[] {
  const names = [topics.all, topics.subscription(info.id), topics.userId(info.userId), ...info.channels.map(topics.channel)];
  if (info.userName) names.push(topics.userName(info.userName));
  if (info.sessionId) names.push(topics.session(info.sessionId));
  return names;
}

function encodeName(name: string): string {
  return encodeURIComponent(name).replace(/[.*!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Reference-counts local interest in broker topics and keeps the broker's
 * subscriptions equal to the set of topics with at least one local member.
 *
 * Changes are collected and flushed in one batched subscribe and one
 * unsubscribe call; flushes never overlap, so a topic dropped and taken again
 * before a flush costs nothing.
 */
export class TopicRouter<Member> {
  private readonly members = new Map<string, Set<Member>>();
  private readonly brokerTopics = new Set<string>();
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> = Promise.resolve();
  private scheduled: Promise<void> | undefined;

  constructor(private readonly broker: Broker) {}

  /**
   * Adds `member` to each topic. Resolves when the broker delivers every
   * topic, so a message published afterwards is certain to arrive.
   */
  add(member: Member, topicNames: Iterable<string>): Promise<void> {
    for (const topic of topicNames) {
      let set = this.members.get(topic);
      if (!set) this.members.set(topic, (set = new Set()));
      set.add(member);
      this.dirty.add(topic);
    }
    return this.schedule();
  }

  /** Removes `member` from each topic; topics left empty are unsubscribed. */
  remove(member: Member, topicNames: Iterable<string>): Promise<void> {
    for (const topic of topicNames) {
      const set = this.members.get(topic);
      if (!set?.delete(member)) continue;
      if (set.size === 0) this.members.delete(topic);
      this.dirty.add(topic);
    }
    return this.schedule();
  }

  /** The local members of `topic` (a live view: do not mutate). */
  membersOf(topic: string): ReadonlySet<Member> | undefined {
    return this.members.get(topic);
  }

  /** Flushes changes that failed earlier (after the broker came back). */
  retry(): Promise<void> {
    return this.schedule();
  }

  /** Topics the broker is subscribed to for this server. */
  get subscribedTopics(): ReadonlySet<string> {
    return this.brokerTopics;
  }

  private schedule(): Promise<void> {
    if (!this.scheduled) {
      this.scheduled = this.flushing.then(() => {
        this.scheduled = undefined;
        return this.flush();
      });
      this.flushing = this.scheduled.catch(() => {});
    }
    return this.scheduled;
  }

  private async flush(): Promise<void> {
    const toSubscribe: string[] = [];
    const toUnsubscribe: string[] = [];
    for (const topic of this.dirty) {
      const wanted = this.members.has(topic);
      if (wanted && !this.brokerTopics.has(topic)) toSubscribe.push(topic);
      if (!wanted && this.brokerTopics.has(topic)) toUnsubscribe.push(topic);
    }
    this.dirty.clear();
    if (toUnsubscribe.length > 0) {
      for (const topic of toUnsubscribe) this.brokerTopics.delete(topic);
      await this.broker.unsubscribe(toUnsubscribe);
    }
    if (toSubscribe.length > 0) {
      try {
        await this.broker.subscribe(toSubscribe);
      } catch (error) {
        // Leave them dirty so the next change retries them.
        for (const topic of toSubscribe) this.dirty.add(topic);
        throw error;
      }
      for (const topic of toSubscribe) this.brokerTopics.add(topic);
    }
  }
}
