import type { RedisClient } from './connection.js';
import type { EventHistory, HistoryRead, HistoryRetention } from '../../src/broker.js';

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
 * cluster pays for it: INCR (a counter that was missing comes back as 1, and
 * then starts a new epoch), XADD of one field, `{at}|{topic}|{payload}` (the
 * publisher's clock, which the age limit is read against anyway), trimmed
 * approximately (in whole blocks: `read` leaves out what is past
 * `maxLength`), and a PUBLISH on each channel it is delivered on.
 */
const publishWithHistory = `local id = redis.call('INCR', KEYS[1])
if id == 1 then
  local t = redis.call('TIME')
  id = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('SET', KEYS[1], string.format('%.0f', id))
end
local sid = string.format('%.0f', id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], sid .. '-0', 'd', ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3])
local message = '#' .. sid .. '|' .. ARGV[3]
for i = 5, #ARGV do redis.call('PUBLISH', ARGV[i], message) end
return sid`;

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
  private readonly keys: [string, string];

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly retention: Required<HistoryRetention>,
    /** Throws when publishing must wait (see `RedisBroker`). */
    private readonly mayPublish: () => void = () => {},
  ) {
    // One hash tag for both: the publish script touches them together, so on a Redis Cluster they share a slot.
    this.keys = [`${prefix}{history}:seq`, `${prefix}{history}:events`];
    redis.defineCommand('history_publish', { numberOfKeys: 2, lua: publishWithHistory });
    redis.defineCommand('history_head', { numberOfKeys: 1, lua: historyHead });
    redis.defineCommand('publish_beside_history', { numberOfKeys: 1, lua: publishBeside });
    redis.defineCommand('history_check_epoch', { numberOfKeys: 3, lua: checkEpoch });
  }

  /**
   * Run on every (re)connection, before anything is published: true when
   * the primary changed (a failover), and the history started a new epoch.
   */
  async checkEpoch(): Promise<boolean> {
    return Number(await this.script('history_check_epoch')(`${this.prefix}{history}:replid`, ...this.keys)) === 1;
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

  async publish(topic: string, payload: string, deliverOn: readonly string[] = [topic]): Promise<number> {
    this.mayPublish();
    const channels = deliverOn.map((target) => this.prefix + target);
    return Number(await this.script('history_publish')(...this.keys, Date.now(), topic, payload, this.retention.maxLength, ...channels));
  }

  async read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead> {
    const head = await this.head();
    if (afterId >= head) return { entries: [], first: head + 1, head };
    // The stream is trimmed in whole blocks: what is past the length limit counts as gone, as an exact trim would have it.
    const from = Math.max(afterId + 1, head - this.retention.maxLength + 1);
    const raw = await this.redis.xrange(this.keys[1], `${from}-0`, `${head}-0`);
    const oldestAllowed = Date.now() - this.retention.maxAgeMs;
    // Entries past their age count as gone, as if the stream had trimmed them.
    const young = raw.map(([streamId, fields]) => ({ id: parseInt(streamId, 10), ...entryOf(fields) })).filter((entry) => entry.at >= oldestAllowed);
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
