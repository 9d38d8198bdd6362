import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createChatApp, type ChatOptions } from '../../examples/chat/app.js';
import type { ServerEventsOptions } from '../../src/options.js';
import { ServerEvents } from '../../src/server-events.js';
import type { Cluster } from './cluster.js';

export interface ChatServer {
  url: string;
  events: ServerEvents;
  close(): Promise<void>;
}

/** The Chat app on a free port, on `cluster`'s broker. */
export async function startChat(cluster: Cluster, options: ChatOptions = {}, eventsOptions: ServerEventsOptions = {}): Promise<ChatServer> {
  const events = new ServerEvents({ broker: cluster.broker(), ...eventsOptions });
  await events.start();
  const app = await createChatApp(events, options);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    events,
    async close() {
      await events.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
