import type { ExecutionContext } from 'ava';
import type { Broker } from '../../src/broker.js';
import type { ClusterFactory, ClusterOptions } from '../helpers/cluster.js';

/** `count` connected brokers on one fresh backend, closed when the test ends. */
export async function connections(t: ExecutionContext, factory: ClusterFactory, count = 2, options: ClusterOptions = {}): Promise<Broker[]> {
  const cluster = await factory.create(options);
  const brokers: Broker[] = [];
  t.teardown(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await cluster.close();
  });
  for (let i = 0; i < count; i++) {
    const broker = cluster.broker();
    await broker.connect();
    brokers.push(broker);
  }
  return brokers;
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await delay(25);
  }
}
