import { spawn } from 'node:child_process';
import net from 'node:net';
import test from 'ava';
import { MemoryBroker } from '../adapters/memory.js';
import { GuardedBroker } from '../src/guarded-broker.js';

/** A memory broker whose sequence comes over a real socket, from a server in another process that answers at once. */
class SocketBroker extends MemoryBroker {
  constructor(private readonly socket: net.Socket) {
    super();
  }
  override nextSequence(): Promise<number> {
    return new Promise((resolve) => {
      this.socket.once('data', (data) => resolve(Number(String(data))));
      this.socket.write('next');
    });
  }
}

test('an answer that arrived while this server was too busy to read it is taken: the broker is not called away', async (t) => {
  // Another process, so that it answers while this one is busy.
  const answering = spawn(process.execPath, ['-e', "const s = require('net').createServer((c) => c.on('data', () => c.write('7'))).listen(0, '127.0.0.1', () => console.log(s.address().port))"]);
  t.teardown(() => void answering.kill());
  const port = await new Promise<number>((resolve) => answering.stdout.once('data', (data) => resolve(Number(String(data)))));
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  t.teardown(() => void socket.destroy());

  const guarded = new GuardedBroker(new SocketBroker(socket), 100, 100);
  const answer = guarded.nextSequence('x');
  // Busy past the bound: the answer comes in meanwhile, and waits to be read behind the expired timer.
  const busyUntil = Date.now() + 300;
  while (Date.now() < busyUntil);
  t.is(await answer, 7);
  t.false(guarded.isStalled);
});

test('a broker that does not answer within the bound is called away', async (t) => {
  const silent = new (class extends MemoryBroker {
    override nextSequence(): Promise<number> {
      return new Promise(() => {});
    }
  })();
  const guarded = new GuardedBroker(silent, 100, 100);
  await t.throwsAsync(guarded.nextSequence('x'), { message: /did not answer: nextSequence took longer than 100 ms/ });
  t.true(guarded.isStalled);
});

test('an adapter that throws BrokerUnavailableError itself marks the broker stalled, and a ping ends it', async (t) => {
  const { BrokerUnavailableError } = await import('../src/guarded-broker.js');
  let failing = true;
  const flaky = new (class extends MemoryBroker {
    override async nextSequence(name: string): Promise<number> {
      if (failing) throw new BrokerUnavailableError('the adapter lost its connection');
      return super.nextSequence(name);
    }
  })();
  const guarded = new GuardedBroker(flaky, 100, 100);
  await t.throwsAsync(guarded.nextSequence('x'), { message: 'the adapter lost its connection' });
  t.true(guarded.isStalled, 'so the outage it starts ends when the broker answers a ping');
  failing = false;
  await guarded.ping();
  t.false(guarded.isStalled);
});
