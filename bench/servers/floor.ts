/**
 * The floor: the least a Redis-backed SSE fan-out can do. node:http, one
 * ioredis connection to publish and one to subscribe, a Set of responses,
 * one `data:` line per message. No protocol, no presence, no history, no
 * framework: whatever server-events costs above this is its own overhead.
 *
 * With FLOOR_ON=koa the same handler runs inside a Koa app, as
 * server-events' middleware does: what Koa alone adds to each connection.
 */
import http from 'node:http';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { portOf, serveCommands } from './control.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const publisher = new Redis(url);
const subscriber = new Redis(url);
const streams = new Set<http.ServerResponse>();

await subscriber.subscribe('floor:bench');
subscriber.on('message', (_channel: string, data: string) => {
  const frame = `data: ${data}\n\n`;
  for (const stream of streams) stream.write(frame);
});

const handle = (request: http.IncomingMessage, response: http.ServerResponse) => {
  if (!request.url?.startsWith('/event-stream')) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // A first frame so that the client knows it is connected, as cmd.onConnect does for server-events.
  response.write(': connected\n\n');
  streams.add(response);
  request.on('close', () => streams.delete(response));
};

function onKoa(): http.Server {
  const app = new Koa();
  app.use((ctx) => {
    ctx.respond = false;
    handle(ctx.req, ctx.res);
  });
  return http.createServer(app.callback());
}

const server = process.env.FLOOR_ON === 'koa' ? onKoa() : http.createServer(handle);
server.listen(0, '127.0.0.1', () => {
  serveCommands(portOf(server), (tick) => publisher.publish('floor:bench', JSON.stringify(tick)));
});
