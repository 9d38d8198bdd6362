/**
 * How a stream's frames reach its socket: whole, several in one write when
 * they come together, and a busy stream's within its coalescing window in
 * one write, while a quiet stream's frame goes at once.
 */
import { EventEmitter } from 'node:events';
import type { Context } from 'koa';
import test from 'ava';
import { ResponseSink, type SinkOwner } from '../../src/http/response-sink.js';

/** An owner that is told nothing of interest here. */
const idle: SinkOwner = { overflowed() {}, closed() {} };
const turn = () => new Promise((resolve) => setImmediate(resolve));
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Just enough of a Koa context for a sink: a response that records its writes. */
function fakeContext() {
  const writes: string[] = [];
  const req = Object.assign(new EventEmitter(), { destroyed: false, socket: { setTimeout() {}, setNoDelay() {}, setKeepAlive() {} } });
  const res = {
    writableEnded: false,
    destroyed: false,
    writableLength: 0,
    writeHead() {},
    flushHeaders() {},
    write: (chunk: string) => writes.push(chunk),
    end() {},
  };
  return { ctx: { req, res, respond: true } as unknown as Context, writes };
}

test('frames that come together leave in one write; a busy stream waits out its window; a quiet one does not wait', async (t) => {
  const { ctx, writes } = fakeContext();
  const sink = new ResponseSink(ctx, '127.0.0.1', idle, 1 << 20, 100);
  sink.open();
  for (let i = 0; i < 5; i++) sink.write(`data: ${i}\n\n`);
  t.deepEqual(writes, [], 'nothing is written before the end of the turn');
  await turn();
  t.deepEqual(writes, ['data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n'], 'one write, every frame whole and in order');

  sink.write('data: 5\n\n');
  await turn();
  t.is(writes.length, 1, 'within the window, the next frame waits');
  sink.write('data: 6\n\n');
  await delay(150);
  t.deepEqual(writes.slice(1), ['data: 5\n\ndata: 6\n\n'], 'and leaves with the others when it ends');

  await delay(150);
  sink.write('data: 7\n\n');
  await turn();
  t.deepEqual(writes.slice(2), ['data: 7\n\n'], 'a frame after a quiet spell goes at the end of the turn');
});

test('ending a stream writes what waits first; a client that went away gets nothing more', async (t) => {
  const { ctx, writes } = fakeContext();
  const sink = new ResponseSink(ctx, '127.0.0.1', idle, 1 << 20, 100);
  sink.open();
  sink.write('data: a\n\n');
  await turn();
  sink.write('data: b\n\n');
  sink.end();
  t.deepEqual(writes, ['data: a\n\n', 'data: b\n\n']);

  const other = fakeContext();
  const closed: ResponseSink[] = [];
  const gone = new ResponseSink(other.ctx, '127.0.0.1', { overflowed() {}, closed: (sink) => closed.push(sink) }, 1 << 20, 0);
  gone.open();
  gone.write('data: lost\n\n');
  (other.ctx.req as EventEmitter).emit('close');
  await turn();
  t.deepEqual(other.writes, []);
  t.deepEqual(closed, [gone], 'its owner hears of it once');
});

test('everyone who asked hears once that the client went away, and one who asks later hears at once', (t) => {
  const { ctx } = fakeContext();
  const sink = new ResponseSink(ctx, '127.0.0.1', idle, 1 << 20);
  const heard: string[] = [];
  sink.onClose(() => heard.push('first'));
  sink.onClose(() => heard.push('second'));
  sink.onClose(() => heard.push('third'));
  ctx.req.emit('close');
  ctx.req.emit('close');
  t.deepEqual(heard, ['first', 'second', 'third']);
  sink.onClose(() => heard.push('late'));
  t.deepEqual(heard, ['first', 'second', 'third', 'late']);
});
