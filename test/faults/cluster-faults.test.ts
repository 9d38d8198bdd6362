import test, { type ExecutionContext } from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import { ServerEvents } from '../../src/server-events.js';
import { findBinary, startNatsCluster, startRedisSentinel, startServerProcess, type BrokerCluster, type BrokerProcess, type ServerProcess } from '../helpers/processes.js';
import { TcpRelay } from '../helpers/relay.js';
import { delay, request } from '../helpers/server.js';
import { onlyAnnouncedLoss, recordingClient, steadyPublisher, until } from '../helpers/steady.js';

/**
 * A node of the broker's own cluster dies under a steady stream, with real
 * processes: the NATS node that leads the history stream, or the Redis
 * primary that Sentinel then replaces with its replica. Each test states
 * what was lost: nothing, or exactly what `cmd.onReset` announced.
 */
const quiet = { warn: () => {}, error: () => {} };

function needs(binaries: string[], name: string): boolean {
  const missing = binaries.filter((binary) => findBinary(binary) === undefined);
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') test(`${name} needs ${missing.join(', ')}`, (t) => t.fail(`${missing.join(', ')} not installed`));
  else test.skip(`${name}: ${missing.join(', ')} not installed`, () => {});
  return false;
}

async function ownCluster(t: ExecutionContext, start: (binary: string) => Promise<BrokerCluster>, binary: string) {
  const cluster = await start(findBinary(binary)!);
  t.teardown(() => cluster.dispose());
  return cluster;
}

/** Two server processes and four clients of ours, each listing both servers; returns them once all are connected. */
async function audience(t: ExecutionContext, kind: 'redis' | 'nats', url: string, prefix: string) {
  const servers: ServerProcess[] = [];
  t.teardown(() => servers.forEach((s) => s.kill()));
  for (let i = 0; i < 2; i++) servers.push(await startServerProcess(kind, url, prefix));
  const clients = Array.from({ length: 4 }, (_, i) => recordingClient([servers[i % 2]!.url, servers[(i + 1) % 2]!.url]));
  t.teardown(() => Promise.all(clients.map((c) => c.client.stop())));
  await Promise.all(clients.map((c) => c.client.connect()));
  return { servers, clients };
}

/** The user ids (one per anonymous subscription) listed in `home` by each server. */
async function listings(servers: ServerProcess[]): Promise<string[][]> {
  return Promise.all(
    servers.map(async (server) => {
      const reply = await request('GET', `${server.url}/event-subscribers?channels=home`);
      return ((reply.json ?? []) as { userId: string }[]).map((info) => info.userId).sort();
    }),
  );
}

if (needs(['nats-server'], 'nats-cluster faults')) {
  test.serial('nats-cluster: the node leading the history stream is SIGKILLed under a steady stream; nothing the broker took is lost, nobody is reset, every subscription stays', async (t) => {
    const cluster = await ownCluster(t, startNatsCluster, 'nats-server');
    const prefix = 'leader';
    const { servers, clients } = await audience(t, 'nats', cluster.url, prefix);
    const ids = clients.map((c) => c.client.connectionInfo?.id);

    const publisher = new ServerEvents({ broker: new NatsBroker({ url: cluster.url, prefix }), logger: quiet });
    await publisher.start();
    t.teardown(() => publisher.stop());
    const publishing = steadyPublisher(publisher, 20);
    await delay(1000);

    const nc = await connect({ servers: cluster.url.split(',') });
    const leader = (await (await jetstreamManager(nc)).streams.info(`${prefix}_history`)).cluster?.leader;
    await nc.close();
    const victim = cluster.nodes.findIndex((_, i) => `node${i + 1}` === leader);
    t.true(victim >= 0, `the history stream has a leader (${leader})`);
    await cluster.nodes[victim]!.kill('SIGKILL');
    // Raft elects a new leader within 4 to 9 s; the stream goes on for a while after that.
    await delay(11_000);
    await publishing.stop();

    t.true(servers.every((s) => s.child.exitCode === null && s.child.signalCode === null), 'the server processes are alive');
    const accepted = publishing.accepted;
    t.deepEqual(publishing.rejected, [], `every publish waited through the election and was taken (${[...publishing.reasons].join('; ')})`);
    // Publishes that waited through the election were stored in the order their retries reached the new leader.
    await until(() => clients.every((c) => c.received.length >= accepted.length), 15_000);
    const order = clients[0]!.received;
    for (const [i, c] of clients.entries()) {
      t.deepEqual([...c.received].sort((a, b) => a - b), accepted, `client ${i} got every event the broker took, once`);
      t.deepEqual(c.received, order, `client ${i} got them in the history's order, as every other client`);
      t.deepEqual(c.resets, [], `client ${i} needed no reset`);
      t.is(c.client.connectionInfo?.id, ids[i], `client ${i} kept its subscription`);
    }
    const users = clients.map((c) => c.client.connectionInfo?.userId).sort();
    for (const listed of await listings(servers)) t.deepEqual(listed, users, 'each server lists the four subscriptions');
    t.log(`killed ${leader}: ${accepted.length} taken, ${publishing.rejected.length} refused (the publisher was told)`);
  });
}

/**
 * Kills the Sentinel primary under a steady stream. With `tail`, everyone
 * reaches the primary through a relay, and the replica's link through it is
 * cut for the last half second before the kill (and dropped with it), so
 * that the events the primary took meanwhile never reach the replica: the
 * promoted replica's history ends before what the clients already have.
 */
async function sentinelFailover(t: ExecutionContext, tail: boolean) {
  let relay: TcpRelay | undefined;
  const primaryVia = async (port: number) => (relay = await TcpRelay.start(port)).port;
  const cluster = await ownCluster(t, (binary) => startRedisSentinel(binary, tail ? { primaryVia } : {}), 'redis-server');
  t.teardown(() => relay?.close());
  const prefix = 'failover';
  const { servers, clients } = await audience(t, 'redis', cluster.url, prefix);
  const ids = clients.map((c) => c.client.connectionInfo?.id);
  const [primary] = cluster.nodes as [BrokerProcess];

  const publisher = new ServerEvents({ broker: new RedisBroker({ url: cluster.url, prefix: `${prefix}:` }), logger: quiet });
  await publisher.start();
  t.teardown(() => publisher.stop());
  const publishing = steadyPublisher(publisher, 20);
  await delay(1000);
  if (tail) {
    relay!.cutWhere('REPLCONF');
    await delay(500);
  }
  const takenBeforeKill = publishing.accepted.length;
  await primary.kill('SIGKILL');
  // What the relay held back for the replica dies with the primary.
  relay?.reset();
  await delay(8000);
  await publishing.stop();

  t.true(servers.every((s) => s.child.exitCode === null && s.child.signalCode === null), 'the server processes are alive');
  const accepted = publishing.accepted;
  const last = accepted.at(-1)!;
  t.true(accepted.includes(0) && accepted.length > takenBeforeKill + 100, 'events were taken before and after the failover');
  await until(() => clients.every((c) => c.received.includes(last)), 15_000);
  for (const [i, c] of clients.entries()) {
    const missing = onlyAnnouncedLoss(t, `client ${i}`, c, accepted, 'failover');
    // Replication is asynchronous: the promoted replica cannot know it has every event, so the history starts a new epoch.
    t.true(c.resets.length > 0, `client ${i} is told that the history may have lost events`);
    t.is(c.client.connectionInfo?.id, ids[i], `client ${i} kept its subscription`);
    const before = c.eventIds.slice(0, c.resets[0]);
    const after = c.eventIds.slice(c.resets[0]);
    t.true(after.every((id) => id > Math.max(...before)), `client ${i}: no event id after the failover repeats one from before`);
    t.log(`client ${i}: ${c.received.length} of ${accepted.length}, ${missing.length} missing, ${c.resets.length} resets, ${c.client.connectionInfo?.id === ids[i] ? 'the same' : 'a new'} subscription`);
  }
  const users = clients.map((c) => c.client.connectionInfo?.userId).sort();
  for (const listed of await listings(servers)) t.deepEqual(listed, users, 'each server lists every subscription, once');
  t.log(`${accepted.length} taken, ${publishing.rejected.length} refused during the failover (the publisher was told)`);
}

if (needs(['redis-server', 'redis-cli'], 'redis-sentinel faults')) {
  test.serial('redis-sentinel: the primary is SIGKILLed under a steady stream; the servers follow the promoted replica, every client is told by cmd.onReset, nothing after it is lost, presence is whole', (t) => sentinelFailover(t, false));
  test.serial('redis-sentinel: the primary dies with a tail its replica never got; the same, and the ids it lost are never given again', (t) => sentinelFailover(t, true));
}
