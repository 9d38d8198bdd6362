import test from 'ava';
import { NatsBroker } from '../../../adapters/nats/index.js';
import { withBrokerServer } from '../../helpers/broker-servers.js';
import { delay } from '../../helpers/server.js';

withBrokerServer('nats', (_factory, server) => {
  test('a roster outlives the presence age limit while its members stay: a quiet channel is still listed', async (t) => {
    // A 2 s age limit stands in for the default hour.
    const broker = new NatsBroker({ url: server().url, prefix: 'quiet', presenceMaxAgeMs: 2000 });
    await broker.connect();
    t.teardown(() => broker.close());
    await broker.presence.put('s1', 'still here', ['ch.quiet', 'uid.1'], 1500);
    for (let i = 0; i < 6; i++) {
      await delay(500);
      t.true(await broker.presence.touch('s1', 1500), `renewal ${i + 1}`);
    }
    const members: string[] = [];
    for await (const ids of broker.presence.members('ch.quiet', 100)) members.push(...ids);
    t.deepEqual(members, ['s1'], 'listed 3 s after its only join, past the 2 s age limit');
    t.is(await broker.presence.get('s1'), 'still here');
  });
});
