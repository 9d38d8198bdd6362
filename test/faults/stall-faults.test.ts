import test, { type ExecutionContext } from 'ava';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import type { Broker } from '../../src/broker.js';
import { ServerEventsClient } from '../../src/client/index.js';
import { Records } from '../../src/records.js';
import { findBinary, startNats, startRedis, startServerProcess, type BrokerProcess, type ServerProcess } from '../helpers/processes.js';
import { TcpRelay } from '../helpers/relay.js';
import { delay } from '../helpers/server.js';
import { SseStream } from '../helpers/sse.js';

/**
 * A broker that stops answering without going away: frozen with SIGSTOP, or
 * cut off by a relay that stops passing bytes while every TCP connection
 * stays open. Both last longer than the idle timeout, under a steady stream
 * of publishes, with real server processes and real clients.
 */
const timers = { IDLE_TIMEOUT_MS: '2500', HOUSEKEEPING_MS: '250', HEARTBEAT_MS: '400', BROKER_TIMEOUT_MS: '600' };
const boundMs = Number(timers.BROKER_TIMEOUT_MS);
const outageMs = 4000;

const kinds = [
  { kind: 'redis', binary: 'redis-server', start: startRedis, broker: (url: string, prefix: string): Broker => new RedisBroker({ url, prefix: `${prefix}:` }) },
  { kind: 'nats', binary: 'nats-server', start: startNats, broker: (url: string, prefix: string): Broker => new NatsBroker({ url, prefix }) },
] as const;

/** A client on one server only (no failover), recording what it receives. */
function watcher(url: string) {
  const received: number[] = [];
  const ids = new Set<string>();
  const leaves: string[] = [];
  let resets = 0;
  const client = new ServerEventsClient(url, ['home'], {
    handlers: {
      onConnect: (info) => void ids.add(info.id),
      onLeave: (message) => void leaves.push((message.body as { userId: string }).userId),
      onReset: () => void resets++,
      msg: (n: number) => void received.push(n),
    },
  });
  return {
    client,
    received,
    ids,
    leaves,
    get resets() {
      return resets;
    },
  };
}

/** POSTs one numbered event a tick to `server`, each answered or not within its own time, until stopped. */
function publisher(server: ServerProcess, everyMs: number) {
  const outcomes: Array<{ n: number; status: number; ms: number }> = [];
  let running = true;
  const pending: Promise<void>[] = [];
  const done = (async () => {
    for (let n = 0; running; n++) {
      const started = performance.now();
      pending.push(
        fetch(`${server.url}/test/publish?channel=home&from=${n}`, { method: 'POST', signal: AbortSignal.timeout(10_000) }).then(
          (reply) => void outcomes.push({ n, status: reply.status, ms: performance.now() - started }),
          () => void outcomes.push({ n, status: 0, ms: performance.now() - started }),
        ),
      );
      await delay(everyMs);
    }
    await Promise.all(pending);
  })();
  return {
    outcomes,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function outageTest(t: ExecutionContext, spec: (typeof kinds)[number], mode: 'stall' | 'cut'): Promise<void> {
  const brokerServer: BrokerProcess = await spec.start(findBinary(spec.binary)!);
  t.teardown(() => brokerServer.dispose());
  const relay = mode === 'cut' ? await TcpRelay.start(brokerServer.port) : undefined;
  t.teardown(() => relay?.close());
  const url = relay ? brokerServer.url.replace(`:${brokerServer.port}`, `:${relay.port}`) : brokerServer.url;
  const prefix = `${mode}${Date.now().toString(36)}`;
  const servers = [await startServerProcess(spec.kind, url, prefix, timers), await startServerProcess(spec.kind, url, prefix, timers)];
  t.teardown(() => servers.forEach((server) => server.kill()));
  // A third server dies during the outage: its subscriber must still leave, once, after the broker is back.
  const victim = await startServerProcess(spec.kind, url, prefix, timers);
  t.teardown(() => victim.kill());
  const doomed = await SseStream.open(`${victim.url}/event-stream?channels=home`);
  t.teardown(() => doomed.close());
  await doomed.connected();
  const doomedUser = doomed.connectArgs.userId!;
  const beating = setInterval(() => void fetch(doomed.connectArgs.heartbeatUrl!, { method: 'POST' }).catch(() => {}), Number(timers.HEARTBEAT_MS));
  t.teardown(() => clearInterval(beating));

  const watchers = [watcher(servers[0]!.url), watcher(servers[0]!.url), watcher(servers[1]!.url), watcher(servers[1]!.url)];
  t.teardown(() => Promise.all(watchers.map((w) => w.client.stop())));
  await Promise.all(watchers.map((w) => w.client.connect()));
  const steady = publisher(servers[0]!, 50);
  await delay(1000);

  if (relay) relay.cut();
  else brokerServer.signal('SIGSTOP');
  await delay(outageMs / 2);
  clearInterval(beating);
  victim.kill();
  await delay(outageMs / 2);
  if (relay) relay.heal();
  else brokerServer.signal('SIGCONT');
  const healedAt = Date.now();
  await delay(3000);
  await steady.stop();

  const accepted = steady.outcomes.filter((o) => o.status === 200).map((o) => o.n);
  const refused = steady.outcomes.filter((o) => o.status === 503);
  const slowest = Math.max(...steady.outcomes.map((o) => o.ms));
  t.log(`${spec.kind} ${mode}: ${steady.outcomes.length} publishes, ${accepted.length} accepted, ${refused.length} refused with 503, the slowest answered in ${Math.round(slowest)} ms`);
  t.deepEqual(steady.outcomes.filter((o) => o.status !== 200 && o.status !== 503), [], 'every publish answered 200 or 503');
  t.true(slowest <= boundMs + 700, `every publish answered within the bound (${Math.round(slowest)} ms)`);
  t.true(refused.length > 0, 'publishes during the outage were refused, not left waiting');

  // Everything accepted arrives, once and in order, on every client.
  const last = Math.max(...accepted);
  for (let waited = 0; waited < 5000 && watchers.some((w) => !w.received.includes(last)); waited += 100) await delay(100);
  for (const [i, w] of watchers.entries()) {
    const missing = accepted.filter((n) => !w.received.includes(n));
    t.deepEqual(missing, [], `client ${i}: nothing accepted is missing`);
    const disorder = w.received.findIndex((n, k) => k > 0 && n <= w.received[k - 1]!);
    if (disorder >= 0) t.log(`client ${i} received ${w.received.slice(Math.max(0, disorder - 5), disorder + 5).join(', ')} around position ${disorder}`);
    t.true(disorder < 0, `client ${i}: each once, in order`);
    t.is(w.resets, 0, `client ${i}: no reset (the history lost nothing)`);
    t.is(w.ids.size, 1, `client ${i}: kept its subscription`);
  }
  // Nobody left but the subscriber of the server that died, once, soon after the broker came back.
  const idle = Number(timers.IDLE_TIMEOUT_MS);
  for (let waited = 0; waited < idle + 5000 && watchers.some((w) => !w.leaves.includes(doomedUser)); waited += 100) await delay(100);
  const tookMs = Date.now() - healedAt;
  await delay(500);
  for (const [i, w] of watchers.entries()) t.deepEqual(w.leaves, [doomedUser], `client ${i}: one leave, of the dead server's subscriber only`);
  t.log(`${spec.kind} ${mode}: the dead server's subscriber left ${tookMs} ms after the broker came back`);
  t.true(tookMs <= idle + 2500, `it left ${tookMs} ms after the broker came back`);
  t.true(servers.every((server) => server.child.exitCode === null && server.child.signalCode === null), 'the servers stayed alive');

  // Everyone leaves, and nothing is left in presence.
  await Promise.all(watchers.map((w) => w.client.stop()));
  const probe = spec.broker(brokerServer.url, prefix);
  await probe.connect();
  t.teardown(() => probe.close());
  const records = new Records(probe.presence, 1000);
  let left = await records.all();
  for (let waited = 0; waited < 5000 && left.length > 0; waited += 200) {
    await delay(200);
    left = await records.all();
  }
  t.deepEqual(left.map((info) => info.id), [], 'no presence record left');
}

for (const spec of kinds) {
  const binary = findBinary(spec.binary);
  for (const mode of ['stall', 'cut'] as const) {
    const title = `${spec.kind}: ${mode === 'stall' ? 'frozen with SIGSTOP' : 'cut off, its connections left open,'} for longer than the idle timeout under a steady stream: bounded answers, nothing lost, only a server that died leaves`;
    if (binary) test.serial(title, (t) => outageTest(t, spec, mode));
    else if (process.env.CI === 'true') test(title, (t) => t.fail(`${spec.binary} is not installed`));
    else test.skip(`${title} (${spec.binary} is not installed)`, () => {});
  }
}
