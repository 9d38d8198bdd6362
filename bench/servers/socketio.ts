/**
 * socket.io as a user would scale it out: the official Redis adapter over
 * ioredis, WebSocket transport only (its fastest), every client in one room.
 */
import http from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { portOf, serveCommands } from './control.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const server = http.createServer();
const io = new Server(server, {
  transports: ['websocket'],
  adapter: createAdapter(new Redis(url), new Redis(url), { key: 'socketio-bench' }),
});
io.on('connection', (socket) => void socket.join('bench'));
server.listen(0, '127.0.0.1', () => {
  serveCommands(portOf(server), (tick) => io.to('bench').emit('tick', tick));
});
