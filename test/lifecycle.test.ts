/**
 * Found by the soak run: a client that leaves while its registration waits
 * on the broker must leave nothing on the server, in particular no held
 * subscription in the topic router, which would collect every event for ever.
 */
import http from 'node:http';
import test from 'ava';
import { memoryClusters } from './helpers/cluster.js';
import { delay, startServer } from './helpers/server.js';

test('a client that leaves during registration leaves no subscription, topic or record behind', async (t) => {
  const cluster = await memoryClusters.create();
  const broker = cluster.broker();
  // A slow presence write, as a busy Redis would give, opens the window every time.
  const put = broker.presence.put.bind(broker.presence);
  broker.presence.put = async (...args) => {
    await delay(200);
    return put(...args);
  };
  const server = await startServer(cluster, { events: { broker } });
  t.teardown(() => server.close());

  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => {
      const request = http.get(`${server.url}/event-stream?channels=home`, () => {
        // The stream has started: registration is now waiting on the slow write.
        request.destroy();
        resolve();
      });
      request.on('error', () => {});
    });
  }
  await delay(1500);
  const stats = server.events.stats();
  t.is(stats.localSubscriptions, 0);
  t.is(stats.brokerTopics, 2, 'only the server\'s inbox and everyone\'s topic: no topic is still subscribed for a subscription that is gone');
  t.deepEqual(await server.events.getAllSubscriptionInfos(), []);
});
