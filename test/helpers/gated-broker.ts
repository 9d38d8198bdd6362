/**
 * A memory broker connection whose calls a test can hold back, to open the
 * windows a slow broker round trip opens: subscribes, unsubscribes, what
 * arrives, or reads of one record.
 */
import { MemoryBroker, MemoryHub } from '../../adapters/memory.js';
import type { Broker, PresenceStore } from '../../src/broker.js';
import type { ClusterFactory } from '../helpers/cluster.js';

/** A gate: `wait()` resolves at once while open, else when `open()` is called. */
export class Gate {
  private closed: { promise: Promise<void>; resolve: () => void } | undefined;
  close(): void {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.closed = { promise, resolve };
  }
  open(): void {
    const c = this.closed;
    this.closed = undefined;
    c?.resolve();
  }
  get isClosed(): boolean {
    return this.closed !== undefined;
  }
  wait(): Promise<void> {
    return this.closed?.promise ?? Promise.resolve();
  }
}

/** Hooks a test can set on one server's broker connection. */
export class Hooks {
  subscribe = new Gate();
  unsubscribe = new Gate();
  /** Messages received are held back while closed, then handed over in order. */
  inbound = new Gate();
  /** `presence.get(id)` for ids this returns true for waits for `presenceGetGate`. */
  gatedGet: (id: string) => boolean = () => false;
  presenceGetGate = new Gate();
}

function gated(inner: MemoryBroker, hooks: Hooks): Broker {
  const p = inner.presence;
  const presence: PresenceStore = {
    put: (...a) => p.put(...a),
    replace: (...a) => p.replace(...a),
    get: async (id) => {
      if (hooks.gatedGet(id)) await hooks.presenceGetGate.wait();
      return p.get(id);
    },
    getMany: (...a) => p.getMany(...a),
    touch: (...a) => p.touch(...a),
    remove: (...a) => p.remove(...a),
    takeExpired: (...a) => p.takeExpired(...a),
    members: (...a) => p.members(...a),
    unlist: (...a) => p.unlist(...a),
  };
  let held: Array<() => void> = [];
  return {
    name: 'memory',
    presence,
    lists: inner.lists,
    history: inner.history,
    connect: () => inner.connect(),
    publish: (topic, payload) => inner.publish(topic, payload),
    subscribe: async (topics) => {
      await hooks.subscribe.wait();
      return inner.subscribe(topics);
    },
    unsubscribe: async (topics) => {
      await hooks.unsubscribe.wait();
      return inner.unsubscribe(topics);
    },
    onMessage: (handler) =>
      inner.onMessage((topic: string, payload: string, id?: number) => {
        const deliver = () => handler(topic, payload, id);
        if (!hooks.inbound.isClosed && held.length === 0) return deliver();
        held.push(deliver);
        if (held.length === 1)
          void (async () => {
            while (held.length > 0) {
              await hooks.inbound.wait();
              const batch = held;
              held = [];
              for (const d of batch) d();
            }
          })();
      }),
    onStatus: () => {},
    ping: () => inner.ping(),
    nextSequence: (name) => inner.nextSequence(name),
    close: () => inner.close(),
  };
}

/** A memory cluster whose n-th broker connection (the n-th server) takes `hooks[n]`. */
export function gatedMemory(hooks: Array<Hooks | undefined>): ClusterFactory {
  return {
    name: 'memory (gated)',
    async create(options = {}) {
      const hub = new MemoryHub({ history: options.history });
      let n = 0;
      return {
        broker: () => {
          const h = hooks[n++];
          const inner = new MemoryBroker({ hub });
          return h ? gated(inner, h) : inner;
        },
        close: async () => {},
      };
    },
  };
}
