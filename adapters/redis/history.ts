import { writeNow, type RedisClient } from './connection.js';
import type { EventHistory, HistoryRead, HistoryRetention, PublishOnce } from '../../src/broker.js';

/**
 * The history's scripts. Publishing appends to the stream and publishes in
 * one script, so ids and live delivery agree; the pub/sub message carries the
 * id: `#{id}|{payload}`. A missing counter starts a new epoch at Redis's
 * clock in microseconds, above every id of an earlier epoch.
 */
const epochLua = `if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])))
end
`;

/** The newest id; a missing counter (first use, or lost in a restart) starts a new epoch. */
const historyHead = `${epochLua}return redis.call('GET', KEYS[1])`;

/**
 * Publishing, in as few steps as Redis can run it, since every event of the
 * cluster pays for it, and for every publish queued at the same moment in
 * one call (see `RedisHistory.publish`). ARGV: the publisher's clock (which
 * the age limit is read against anyway), `maxLength`, the number of events,
 * then per event its topic, its payload, its once-key ('' for none) and that
 * key's window in ms, the number of channels it is delivered on and those
 * channels. An event with a once-key is taken only if `SET NX` can claim the
 * key (under KEYS[3], the history's slot), in the same atomic step as its
 * append: a repeat, even one queued behind its original while Redis was
 * stalled, is dropped. One INCRBY numbers the taken events (a counter that
 * was missing comes back as the count, and then starts a new epoch); each
 * is one XADD of one field, `{at}|{topic}|{payload}`, and a PUBLISH per
 * channel; one approximate trim (in whole blocks: `read` leaves out what is
 * past `maxLength`) ends it. Returns the first id ('0' when none was taken)
 * and one flag per event, `1` taken or `0` a repeat.
 */
const publishWithHistory = `local count = tonumber(ARGV[3])
local taken = {}
local flags = {}
local takenCount = 0
local i = 4
for k = 1, count do
  local once = ARGV[i + 2]
  local take = once == '' or redis.call('SET', KEYS[3] .. once, '1', 'NX', 'PX', ARGV[i + 3])
  taken[k] = take and true or false
  if taken[k] then takenCount = takenCount + 1 end
  flags[k] = taken[k] and '1' or '0'
  i = i + 5 + tonumber(ARGV[i + 4])
end
if takenCount == 0 then return {'0', table.concat(flags)} end
local last = redis.call('INCRBY', KEYS[1], takenCount)
if last == takenCount then
  local t = redis.call('TIME')
  last = tonumber(t[1]) * 1000000 + tonumber(t[2]) + takenCount - 1
  redis.call('SET', KEYS[1], string.format('%.0f', last))
end
local first = last - takenCount + 1
local id = first
local at = ARGV[1]
i = 4
for k = 1, count do
  local channels = tonumber(ARGV[i + 4])
  if taken[k] then
    local sid = string.format('%.0f', id)
    local payload = ARGV[i + 1]
    redis.call('XADD', KEYS[2], sid .. '-0', 'd', at .. '|' .. ARGV[i] .. '|' .. payload)
    local message = '#' .. sid .. '|' .. payload
    for c = i + 5, i + 4 + channels do redis.call('PUBLISH', ARGV[c], message) end
    id = id + 1
  end
  i = i + 5 + channels
end
redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[2])
return {string.format('%.0f', first), table.concat(flags)}`;

/**
 * The most events, and about the most payload bytes, one publish call
 * carries. A full batch goes out at once rather than at the end of the
 * turn, so that Redis runs it while this process makes the next one: on a
 * busy server the two then work side by side instead of taking turns.
 */
const batchEvents = 32;
const batchBytes = 512 * 1024;

interface QueuedPublish {
  topic: string;
  payload: string;
  channels: string[];
  once: PublishOnce | undefined;
  resolve(id: number | undefined): void;
  reject(error: unknown): void;
}

/**
 * Starts a new epoch when the history's node is not the primary it was
 * (KEYS[1] holds the replication id it had): replication is asynchronous, so
 * a promoted replica may lack the last events its old primary took, and
 * would give their ids again. Dropping the counter and the events makes the
 * next publish start an epoch above every earlier id, and every client
 * behind it gets `cmd.onReset`, as after a restart that lost everything.
 */
const checkEpoch = `local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
local known = redis.call('GET', KEYS[1])
if known == replid then return 0 end
redis.call('SET', KEYS[1], replid)
if not known then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
return 1`;

/** A plain publish, run on the node of KEYS[1] (the history's slot); the key is only there to route it. */
const publishBeside = `redis.call('PUBLISH', ARGV[1], ARGV[2])`;

/** Splits what the subscriber connection received into the id and the payload of a history message. */
export function parseHistoryMessage(message: string): { id?: number; payload: string } {
  if (!message.startsWith('#')) return { payload: message };
  const bar = message.indexOf('|');
  return { id: Number(message.slice(1, bar)), payload: message.slice(bar + 1) };
}

/** The event history as a Redis stream whose entry ids are the event ids. */
export class RedisHistory implements EventHistory {
  private readonly keys: [string, string, string];
  private queued: QueuedPublish[] = [];
  private queuedBytes = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly retention: Required<HistoryRetention>,
    /** Throws when publishing must wait (see `RedisBroker`). */
    private readonly mayPublish: () => void = () => {},
  ) {
    // One hash tag for both: the publish script touches them together, so on a Redis Cluster they share a slot.
    // The third is where once-keys go (a prefix, in the same slot).
    this.keys = [`${prefix}{history}:seq`, `${prefix}{history}:events`, `${prefix}{history}:once:`];
    redis.defineCommand('history_publish', { numberOfKeys: 3, lua: publishWithHistory });
    redis.defineCommand('history_head', { numberOfKeys: 1, lua: historyHead });
    redis.defineCommand('publish_beside_history', { numberOfKeys: 1, lua: publishBeside });
    redis.defineCommand('history_check_epoch', { numberOfKeys: 3, lua: checkEpoch });
  }

  /**
   * Run on every (re)connection, before anything is published: true when
   * the primary changed (a failover), and the history started a new epoch.
   */
  async checkEpoch(): Promise<boolean> {
    return Number(await this.script('history_check_epoch')(`${this.prefix}{history}:replid`, this.keys[0], this.keys[1])) === 1;
  }

  /**
   * Publishes without history from the node that publishes with it. On a
   * Redis Cluster a PUBLISH names no key and would go to any node, and two
   * nodes relay to a subscriber over two links, which do not keep each
   * other's order.
   */
  async publishBeside(channel: string, payload: string): Promise<void> {
    await this.script('publish_beside_history')(this.keys[0], channel, payload);
  }

  /**
   * Queues the event; the events queued while the code that is running now
   * runs go to Redis in as few script calls as the batch limits allow, in
   * the order of the calls, each with its own id. A busy server's publishes
   * so share the cost of a call (on Redis and here), and a lone one waits
   * for nothing. A batch is written at once (`writeNow`), not at the end of
   * the turn with the other commands of the moment.
   */
  publish(topic: string, payload: string, deliverOn: readonly string[] = [topic], once?: PublishOnce): Promise<number | undefined> {
    this.mayPublish();
    return new Promise((resolve, reject) => {
      if (this.queued.length === 0) queueMicrotask(() => this.sendQueued());
      this.queued.push({ topic, payload, channels: deliverOn.map((target) => this.prefix + target), once, resolve, reject });
      this.queuedBytes += payload.length;
      if (this.queued.length >= batchEvents || this.queuedBytes >= batchBytes) this.sendQueued();
    });
  }

  /** Sends what is queued as one batch (the limits in `publish` keep it within them). */
  private sendQueued(): void {
    if (this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    void this.sendBatch(batch);
  }

  private async sendBatch(batch: QueuedPublish[]): Promise<void> {
    try {
      this.mayPublish();
      const args: unknown[] = [Date.now(), this.retention.maxLength, batch.length];
      for (const { topic, payload, channels, once } of batch) args.push(topic, payload, once?.key ?? '', once?.windowMs ?? 0, channels.length, ...channels);
      const reply = this.script('history_publish')(...this.keys, ...args);
      writeNow(this.redis);
      const [first, flags] = (await reply) as unknown as [string, string];
      let next = Number(first);
      batch.forEach((event, i) => event.resolve(flags[i] === '1' ? next++ : undefined));
    } catch (error) {
      for (const event of batch) event.reject(error);
    }
  }

  async read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead> {
    const head = await this.head();
    if (afterId >= head) return { entries: [], first: head + 1, head };
    // The stream is trimmed in whole blocks: what is past the length limit counts as gone, as an exact trim would have it.
    const from = Math.max(afterId + 1, head - this.retention.maxLength + 1);
    const raw = await this.redis.xrange(this.keys[1], `${from}-0`, `${head}-0`);
    const oldestAllowed = Date.now() - this.retention.maxAgeMs;
    const all = raw.map(([streamId, fields]) => ({ id: parseInt(streamId, 10), ...entryOf(fields) }));
    // Entries past their age count as gone, as if the stream had trimmed them: everything up to the newest
    // of them, since the times are the publishers' clocks, which may disagree a little, and a replay must not skip one.
    let lastOld = -1;
    for (let i = 0; i < all.length; i++) if (all[i]!.at < oldestAllowed) lastOld = i;
    const young = all.slice(lastOld + 1);
    const entries = young.filter((entry) => topics.has(entry.topic)).map(({ id, topic, payload }) => ({ id, topic, payload }));
    // What came back starts at the oldest event the read could see; nothing at all means it is all gone.
    const first = young.length > 0 ? young[0]!.id : head + 1;
    return { entries, first, head };
  }

  async head(): Promise<number> {
    return Number(await this.script('history_head')(this.keys[0]));
  }

  private script(name: string): (...args: unknown[]) => Promise<string> {
    const script = (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<string>>)[name]!;
    return (...args) => script.call(this.redis, ...args);
  }
}

/** A stream entry's one field, `{at}|{topic}|{payload}` (a topic is percent-encoded: it has no `|`). */
function entryOf(fields: string[]): { at: number; topic: string; payload: string } {
  const data = fields[1] ?? '';
  const afterAt = data.indexOf('|');
  const afterTopic = data.indexOf('|', afterAt + 1);
  return { at: Number(data.slice(0, afterAt)), topic: data.slice(afterAt + 1, afterTopic), payload: data.slice(afterTopic + 1) };
}
