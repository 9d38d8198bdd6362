/**
 * How a stream's body is framed on HTTP/1.x: the response says
 * `Connection: close`, so it is delimited by the connection's end, and the
 * frames go out as they are, with no chunked framing around them.
 */
import net from 'node:net';
import test from 'ava';
import { memoryClusters } from '../helpers/cluster.js';
import { startServer } from '../helpers/server.js';

/** Sends `request` on a raw socket and resolves with everything the server sent until it closed the connection. */
function exchange(url: string, request: (path: string, host: string) => string, whenConnected: (id: string) => Promise<unknown>): Promise<string> {
  const { hostname, port, pathname, search } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.setEncoding('latin1');
  socket.write(request(`${pathname}${search}`, hostname));
  let received = '';
  let asked = false;
  return new Promise((resolve, reject) => {
    socket.on('data', (data: string) => {
      received += data;
      const id = /"id":"(\w+)"/.exec(received)?.[1];
      if (id && !asked) {
        asked = true;
        whenConnected(id).catch(reject);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
  });
}

for (const version of ['1.1', '1.0']) {
  test(`an HTTP/${version} stream is close-delimited: no Transfer-Encoding, the frames as they are, ended by closing the connection`, async (t) => {
    const cluster = await memoryClusters.create();
    const server = await startServer(cluster);
    t.teardown(() => server.close());

    const raw = await exchange(
      `${server.url}/event-stream?channels=room`,
      (path, host) => `GET ${path} HTTP/${version}\r\nHost: ${host}\r\nAccept: text/event-stream\r\n\r\n`,
      async (id) => {
        await server.events.notifySubscription(id, 'cmd.hello', { n: 1 });
        // The stream ends once the event has been written: the connection closes with it.
        setTimeout(() => void server.events.unregister(id), 100);
      },
    );
    const [head, body] = [raw.slice(0, raw.indexOf('\r\n\r\n')), raw.slice(raw.indexOf('\r\n\r\n') + 4)];
    t.regex(head, new RegExp(`^HTTP/1.1 200 OK\r\n`));
    t.regex(head, /\r\nContent-Type: text\/event-stream/i);
    t.regex(head, /\r\nConnection: close/i);
    t.notRegex(head, /Transfer-Encoding/i);
    t.notRegex(head, /Content-Length/i);
    // Nothing but whole frames, each ending in a blank line: no chunk sizes between them.
    t.regex(body, /^(?:(?:id|data|event|retry):[^\n]*\n|:[^\n]*\n)+\n/);
    t.regex(body, /data: cmd\.onConnect \{/);
    t.regex(body, /data: cmd\.hello \{"n":1\}\n\n/);
    for (const frame of body.split('\n\n').filter(Boolean)) t.regex(frame, /^(?:id|data|event|retry|):/m, `a frame, not a chunk size: ${JSON.stringify(frame.slice(0, 40))}`);
    t.notRegex(body, /^[0-9a-f]+\r$/m, 'no chunk-size line');
  });
}
