import type { Broker } from './broker.js';
import type { SubscriptionInfo } from './records.js';

/**
 * Topic names. Each kind of audience has a topic of its own. Names are
 * percent-encoded, including `.`, `*` and `>`, so every topic is a safe
 * Redis channel and a two-token NATS subject whatever characters a channel
 * or user name contains.
 *
 * Only shared audiences are broker topics: everyone (`all`) and each
 * channel, which a server subscribes to once for all its streams there. A
 * private audience (one subscription, a user id, a user name, a session)
 * has so few members, on so few servers, that a broker topic of its own
 * would cost every idle connection several broker subscriptions. Its
 * events go to the inbox of each server that holds a member (found through
 * the presence indexes of the same names), which hands them to its own
 * members. The history keeps every event under its audience's topic, so a
 * replay finds it either way.
 */
export const topics = {
  all: 'all',
  channel: (name: string) => sharedName(channelNames, 'ch.', name),
  userId: (userId: string) => `uid.${encodeName(userId)}`,
  userName: (userName: string) => `uname.${encodeName(userName)}`,
  session: (sessionId: string) => `sess.${encodeName(sessionId)}`,
  subscription: (id: string) => `sub.${encodeName(id)}`,
  /** A server's inbox (what is sent to the private audiences it holds) and the index of its subscriptions. */
  server: (serverId: string) => sharedName(serverNames, 'srv.', serverId),
};

/**
 * The names of channels and servers, made once each: thousands of records
 * and streams name the same few, and where they are kept (the memory
 * broker's index lists, a router's keys) one copy then serves them all.
 * Bounded, in case names come and go: the cache starts over when full.
 */
const channelNames = new Map<string, string>();
const serverNames = new Map<string, string>();
const sharedNamesKept = 10_000;

function sharedName(cache: Map<string, string>, prefix: string, name: string): string {
  let topic = cache.get(name);
  if (topic === undefined) {
    if (cache.size >= sharedNamesKept) cache.clear();
    topic = `${prefix}${encodeName(name)}`;
    cache.set(name, topic);
  }
  return topic;
}

/** True for the topic of a private audience: reached through server inboxes, never subscribed to. */
export function isPrivateTopic(topic: string): boolean {
  return !(topic === topics.all || topic.startsWith('ch.'));
}

/** Every audience a subscription belongs to: all, itself, its user, user name, session and channels. What its replay reads. */
export function topicsOf(info: SubscriptionInfo): string[] {
  return [topics.all, topics.subscription(info.id), ...routedTopicsOf(info)];
}

/**
 * The audiences a server looks a stream up by in its `TopicRouter`: all but
 * everyone and the subscription itself, which every stream of the server is
 * in, one each, so the server finds them among its streams by id instead of
 * keeping an entry per stream for each (some 100 bytes a connection).
 */
export function routedTopicsOf(info: SubscriptionInfo): string[] {
  const names = [topics.userId(info.userId), ...info.channels.map(topics.channel)];
  if (info.userName) names.push(topics.userName(info.userName));
  if (info.sessionId) names.push(topics.session(info.sessionId));
  return names;
}

/** The subscription id a subscription's own topic names, or `undefined` for any other topic. */
export function subscriptionIdOf(topic: string): string | undefined {
  if (!topic.startsWith('sub.')) return undefined;
  try {
    return decodeURIComponent(topic.slice('sub.'.length));
  } catch {
    // Not a name this server made (a foreign or broken payload): it names no subscription here.
    return '';
  }
}

/** Names that encode to themselves: ids, most channels. Told by one test, where encoding costs a call per character. */
const plainName = /^[A-Za-z0-9_-]*$/;

function encodeName(name: string): string {
  if (plainName.test(name)) return name;
  return encodeURIComponent(name).replace(/[.*!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Reference-counts local interest in topics and keeps the broker's
 * subscriptions equal to the set of shared topics with at least one local
 * member. Private topics are counted here too, for local delivery, but
 * never subscribed to (see `topics`).
 *
 * Changes are collected and flushed in one batched subscribe and one
 * unsubscribe call; flushes never overlap, so a topic dropped and taken again
 * before a flush costs nothing. A topic with one member keeps it without a
 * set: most private topics have one, and a connection holds several.
 */
export class TopicRouter<Member> {
  private readonly members = new Map<string, Member | Set<Member>>();
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
    let changed = false;
    for (const topic of topicNames) {
      const current = this.members.get(topic);
      if (current === undefined) this.members.set(topic, member);
      else if (current instanceof Set) current.add(member);
      else if (current !== member) this.members.set(topic, new Set([current, member]));
      if (!isPrivateTopic(topic)) {
        this.dirty.add(topic);
        changed = true;
      }
    }
    return changed ? this.schedule() : this.flushing;
  }

  /** Removes `member` from each topic; shared topics left empty are unsubscribed. */
  remove(member: Member, topicNames: Iterable<string>): Promise<void> {
    let changed = false;
    for (const topic of topicNames) {
      const current = this.members.get(topic);
      if (current instanceof Set) {
        if (!current.delete(member)) continue;
        if (current.size === 1) this.members.set(topic, current.values().next().value as Member);
      } else if (current === member) this.members.delete(topic);
      else continue;
      if (!isPrivateTopic(topic)) {
        this.dirty.add(topic);
        changed = true;
      }
    }
    return changed ? this.schedule() : this.flushing;
  }

  /** The local members of `topic`, or `undefined` when it has none (a live view: do not mutate). */
  membersOf(topic: string): Iterable<Member> | undefined {
    const current = this.members.get(topic);
    if (current === undefined) return undefined;
    return current instanceof Set ? (current as Set<Member>) : [current as Member];
  }

  /** Flushes changes that failed earlier (after the broker came back). */
  retry(): Promise<void> {
    return this.schedule();
  }

  /** Topics the broker is subscribed to for this server's streams. */
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
