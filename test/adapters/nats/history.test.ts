/**
 * The NATS history on one node: frozen, the node takes a publish once, late,
 * however long the freeze and however many times the publish was tried
 * meanwhile; and what is past `maxLength` is trimmed in batches, also after
 * the stream was made anew.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsHistory } from '../../../adapters/nats/history.js';
import { CallBudget } from '../../../adapters/nats/kv.js';
import { JetStreamPublisher } from '../../../adapters/nats/publisher.js';
import { withBrokerServer } from '../../helpers/broker-servers.js';
import { delay } from '../../helpers/server.js';

withBrokerServer('nats', (_factory, server) => {
  async function freeze(): Promise<void> {
    server().signal('SIGSTOP');
    const stopped = () => /^\S+ \(.*\) T/.test(readFileSync(`/proc/${server().pid}/stat`, 'utf8'));
    for (let i = 0; i < 100 && !stopped(); i++) await delay(10);
  }

  async function historyOn(t: { teardown(fn: () => unknown): void }, prefix: string, budgetMs: number, maxLength = 1000) {
    const nc: NatsConnection = await connect({ servers: server().url });
    t.teardown(() => nc.close());
    const budget = new CallBudget();
    budget.ms = budgetMs;
    const noKeys = () => {
      throw new Error('no once-keys here');
    };
    const history = new NatsHistory(() => nc, prefix, { maxLength, maxAgeMs: 60_000 }, budget, noKeys, new JetStreamPublisher(() => nc));
    const jsm = await jetstreamManager(nc);
    await history.open(jsm, 1);
    t.teardown(() => jsm.streams.delete(history.stream).catch(() => {}));
    const stored = async () => {
      const info = await jsm.streams.info(history.stream);
      const messages = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) messages.push(await jsm.streams.getMessage(history.stream, { seq }));
      return messages;
    };
    return { history, stored, jsm };
  }

  test.serial('a publish made while the node is frozen for longer than an attempt is answered and stored once when it thaws', async (t) => {
    t.timeout(30_000);
    const { history, stored } = await historyOn(t, 'histOne', 4000);
    await history.publish('ch.a', 'first');
    await freeze();
    let late: Promise<number | undefined>;
    try {
      late = history.publish('ch.a', 'while frozen');
      // Longer than an attempt on a replicated stream (a second), well within the budget.
      await delay(1800);
    } finally {
      server().signal('SIGCONT');
    }
    const id = await late;
    t.truthy(id, 'answered once the node thawed');
    const messages = await stored();
    t.deepEqual(
      messages.map((m) => m?.string()),
      ['first', 'while frozen'],
      'stored once',
    );
  });

  test.serial('a publish frozen past its budget fails, and the node stores it once when it thaws, not once per attempt', async (t) => {
    t.timeout(30_000);
    const { history, stored } = await historyOn(t, 'histPast', 1200);
    await freeze();
    try {
      const started = performance.now();
      await t.throwsAsync(history.publish('ch.a', 'too late'), { name: 'TimeoutError' });
      const waited = performance.now() - started;
      t.true(waited >= 1100 && waited < 3000, `failed after ${Math.round(waited)} ms`);
    } finally {
      server().signal('SIGCONT');
    }
    await delay(500);
    t.deepEqual(
      (await stored()).map((m) => m?.string()),
      ['too late'],
      'taken late, once',
    );
  });

  test('what is past maxLength is purged half of it at a time, no read returns it meanwhile, and a stream made anew is trimmed too', async (t) => {
    const { history, jsm } = await historyOn(t, 'histTrim', 3000, 100);
    const held = async () => {
      await delay(200);
      return (await jsm.streams.info(history.stream)).state.messages;
    };
    const ids: number[] = [];
    for (let i = 0; i < 430; i++) ids.push((await history.publish('ch.a', `e${i}`))!);
    const kept = await held();
    t.true(kept >= 100 && kept <= 150, `JetStream holds ${kept}: at most half of maxLength more`);
    const read = await history.read(0, new Set(['ch.a']));
    t.is(read.first, ids[330]!, 'the newest 100 are what is kept');
    t.is(read.head, ids[429]!);
    t.deepEqual((await history.read(ids[300]!, new Set(['ch.a']))).entries, [], 'a read from before them finds a gap, not the untrimmed');
    t.deepEqual(
      (await history.read(ids[425]!, new Set(['ch.a']))).entries.map((e) => e.payload),
      ['e426', 'e427', 'e428', 'e429'],
    );
    // Made anew (storage lost): its sequences start at 1 again, and the trims must follow them.
    await jsm.streams.delete(history.stream);
    await history.open(jsm, 1);
    for (let i = 0; i < 260; i++) await history.publish('ch.a', `f${i}`);
    const again = await held();
    t.true(again >= 100 && again <= 150, `JetStream holds ${again} of the new stream's 260`);
  });
});
