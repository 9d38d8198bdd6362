import type { ExecutionContext } from 'ava';
import type { Cluster, ClusterFactory } from '../helpers/cluster.js';
import { startServer, type TestServer, type TestServerOptions } from '../helpers/server.js';
import { SseStream } from '../helpers/sse.js';

export interface Fixture {
  servers: TestServer[];
  /** The first server. */
  server: TestServer;
  /** The backend, for a server of the test's own with other options. */
  cluster: Cluster;
  /** Opens a stream on server `on` (default 0) and waits for `cmd.onConnect`. */
  connect(query: string, options?: { on?: number; headers?: Record<string, string> }): Promise<SseStream>;
}

/**
 * A fresh backend from `factory` with `count` servers on it; everything is
 * closed when the test ends.
 */
export async function fixture(
  t: ExecutionContext,
  factory: ClusterFactory,
  options: TestServerOptions & { count?: number } = {},
): Promise<Fixture> {
  const cluster = await factory.create();
  const servers: TestServer[] = [];
  const streams: SseStream[] = [];
  t.teardown(async () => {
    for (const stream of streams) stream.close();
    await Promise.all(servers.map((s) => s.close()));
    await cluster.close();
  });
  for (let i = 0; i < (options.count ?? 1); i++) servers.push(await startServer(cluster, options));
  return {
    servers,
    server: servers[0]!,
    cluster,
    async connect(query, { on = 0, headers } = {}) {
      const stream = await SseStream.open(`${servers[on]!.url}/event-stream${query}`, headers);
      streams.push(stream);
      if (stream.status === 200) await stream.connected();
      return stream;
    },
  };
}
