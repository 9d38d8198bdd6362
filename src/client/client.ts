import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { parseEventData, splitList } from '../protocol.js';
import { applyCss, invokeReceiver, isLifecycle, type ConnectionInfo, type Handlers, type ReceivedMessage, type Receiver } from './dispatch.js';

export interface ServerEventsClientOptions {
  handlers?: Handlers;
  /** Named receivers: `{ tv: { watch(url) {...} } }` receives `tv.watch` messages. */
  receivers?: Record<string, Receiver>;
  /** Extra request headers (not possible with a browser EventSource, possible here). */
  headers?: Record<string, string>;
  /** Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Cookies on cross-origin requests. Default `include`, as ServiceStack's clients. */
  credentials?: RequestCredentials;
  /** First reconnect delay; doubles per failed attempt, with jitter. Default 500 ms. */
  reconnectDelayMs?: number;
  /** Longest reconnect delay. Default 30,000 ms. */
  maxReconnectDelayMs?: number;
}

/** A subscriber, as returned by `getChannelSubscribers()`. */
export interface ServerEventUser {
  userId: string;
  displayName: string;
  profileUrl: string;
  channels: string[];
  meta: Record<string, string>;
}

/**
 * A Server Events client for Node 20 and browsers: reads the stream with
 * `fetch` (so it can send headers such as `Last-Event-ID`), sends heartbeats,
 * dispatches messages to handlers, receivers and `trigger.*` listeners, and
 * reconnects with exponential back-off and jitter.
 */
export class ServerEventsClient {
  private channelList: string[];
  private readonly baseUrls: string[];
  private urlIndex = 0;
  private readonly options: ServerEventsClientOptions;
  private readonly handlers: Handlers;
  private readonly receivers: Record<string, Receiver>;
  private readonly listeners = new Map<string, Set<(body: unknown, message: ReceivedMessage) => void>>();
  private info: ConnectionInfo | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private abort: AbortController | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private failures = 0;
  private lastId: string | undefined;
  private lastMessageAt = 0;
  private wake: (() => void) | undefined;
  private unloadHooked = false;
  private session: string | undefined;
  private connectWaiters: Array<{ resolve: (info: ConnectionInfo) => void; reject: (error: unknown) => void }> = [];

  /**
   * @param baseUrls the server, or several servers of one cluster: each
   *   reconnect tries the next, so a client fails over when its server dies.
   */
  constructor(baseUrls: string | readonly string[], channels: readonly string[], options: ServerEventsClientOptions = {}) {
    this.baseUrls = (typeof baseUrls === 'string' ? [baseUrls] : [...baseUrls]).map((url) => url.replace(/\/+$/, ''));
    if (this.baseUrls.length === 0) throw new Error('ServerEventsClient needs at least one server URL');
    this.channelList = [...channels];
    this.options = options;
    this.handlers = { ...options.handlers };
    this.receivers = { ...options.receivers };
  }

  /** The server this client uses now. */
  get baseUrl(): string {
    return this.baseUrls[this.urlIndex]!;
  }

  /** The id of the last event received: sent as Last-Event-ID when reconnecting. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** The channels this client is in (updated by subscribe/unsubscribe). */
  get channels(): readonly string[] {
    return this.channelList;
  }

  /** The last `cmd.onConnect` payload, or `undefined` before the first. */
  get connectionInfo(): ConnectionInfo | undefined {
    return this.info;
  }

  get subscriptionId(): string | undefined {
    return this.info?.id;
  }

  /** Opens the stream (and keeps it open) without waiting. */
  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.running = this.run();
    if (typeof window !== 'undefined' && !this.unloadHooked) {
      this.unloadHooked = true;
      // Leave at once when the page goes away rather than after the idle timeout.
      window.addEventListener('pagehide', (event) => {
        // A page kept in the back/forward cache may come back: keep the subscription.
        if (event.persisted) return;
        const url = this.info?.unRegisterUrl;
        this.stopped = true;
        this.abort?.abort();
        if (url) navigator.sendBeacon(url);
      });
    }
    return this;
  }

  /** Starts if needed and resolves with the next `cmd.onConnect`. */
  connect(): Promise<ConnectionInfo> {
    const next = new Promise<ConnectionInfo>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    this.start();
    return next;
  }

  /** Closes the stream, stops heartbeats and unregisters the subscription. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopHeartbeat();
    // Unregister first: the server then leaves at once, rather than keeping a dropped stream resumable.
    const url = this.info?.unRegisterUrl;
    this.info = undefined;
    if (url) await this.post(url).catch((error) => this.report(error));
    this.abort?.abort();
    this.wake?.();
    await this.running;
    for (const waiter of this.connectWaiters.splice(0)) waiter.reject(new Error('client stopped'));
  }

  subscribeToChannels(...channels: string[]): Promise<void> {
    return this.updateSubscriber(channels, []);
  }

  unsubscribeFromChannels(...channels: string[]): Promise<void> {
    return this.updateSubscriber([], channels);
  }

  /** Changes this subscription's channels on the server, then locally. */
  async updateSubscriber(subscribe: string[], unsubscribe: string[]): Promise<void> {
    const url = this.requireInfo().updateSubscriberUrl ?? `${this.baseUrl}/event-subscribers/${this.requireInfo().id}`;
    await this.post(url, JSON.stringify({ subscribeChannels: subscribe, unsubscribeChannels: unsubscribe }));
    const next = this.channelList.filter((c) => !unsubscribe.includes(c));
    for (const channel of subscribe) if (!next.includes(channel)) next.push(channel);
    this.channelList = next;
  }

  /** The subscribers of this client's channels. */
  async getChannelSubscribers(): Promise<ServerEventUser[]> {
    const url = `${this.baseUrl}/event-subscribers?channels=${encodeURIComponent(this.channelList.join(','))}`;
    const res = await this.fetcher(url, { credentials: this.credentials, headers: this.options.headers });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const maps = (await res.json()) as Record<string, string>[];
    return maps.map(({ userId = '', displayName = '', profileUrl = '', channels = '', ...meta }) => ({
      userId,
      displayName,
      profileUrl,
      channels: splitList(channels),
      meta,
    }));
  }

  /** Listens for `trigger.{name}` messages. */
  addListener(name: string, listener: (body: unknown, message: ReceivedMessage) => void): this {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener);
    return this;
  }

  removeListener(name: string, listener: (body: unknown, message: ReceivedMessage) => void): this {
    this.listeners.get(name)?.delete(listener);
    return this;
  }

  registerHandler(name: string, handler: (...args: any[]) => void): this {
    this.handlers[name] = handler;
    return this;
  }

  /** The receiver of `cmd.*` messages that have no handler. */
  registerReceiver(receiver: Receiver): this {
    return this.registerNamedReceiver('cmd', receiver);
  }

  registerNamedReceiver(name: string, receiver: Receiver): this {
    this.receivers[name] = receiver;
    return this;
  }

  unregisterReceiver(name = 'cmd'): this {
    delete this.receivers[name];
    return this;
  }

  // ---- connection ------------------------------------------------------------

  private async run(): Promise<void> {
    while (!this.stopped) {
      let error: unknown;
      try {
        await this.readStream();
        error = new Error('event stream ended');
      } catch (e) {
        error = e;
      }
      this.stopHeartbeat();
      if (this.stopped) break;
      this.report(error);
      await this.sleep(this.backoffDelay());
      if (this.stopped) break;
      this.failures++;
      this.urlIndex = (this.urlIndex + 1) % this.baseUrls.length;
      this.handlers.onReconnect?.(error);
    }
  }

  private async readStream(): Promise<void> {
    const abort = (this.abort = new AbortController());
    // After the first stream: resume the same subscription, and replay what was missed.
    const resume = this.info ? `&resume=${encodeURIComponent(this.info.id)}` : '';
    const url = `${this.baseUrl}/event-stream?channels=${encodeURIComponent(this.channelList.join(','))}${resume}&t=${Date.now()}`;
    const headers: Record<string, string> = { Accept: 'text/event-stream', ...this.options.headers };
    if (this.lastId) headers['Last-Event-ID'] = this.lastId;
    const res = await this.fetcher(url, { headers, signal: abort.signal, credentials: this.credentials, cache: 'no-store' });
    if (!res.ok || !res.body) throw new Error(`event stream refused: ${res.status} ${res.statusText}`);
    const parser = createParser({ onEvent: (event) => this.receive(event) });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        parser.feed(value);
      }
    } finally {
      reader.releaseLock();
    }
  }

  private backoffDelay(): number {
    const initial = this.options.reconnectDelayMs ?? 500;
    const max = this.options.maxReconnectDelayMs ?? 30_000;
    const ceiling = Math.min(max, initial * 2 ** Math.min(this.failures, 16));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private startHeartbeat(info: ConnectionInfo): void {
    this.stopHeartbeat();
    const url = info.heartbeatUrl;
    if (!url) return;
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastMessageAt > info.idleTimeoutMs) {
        this.restart(new Error(`no message for ${info.idleTimeoutMs} ms`));
        return;
      }
      this.post(url).catch((error) => this.restart(error));
    }, info.heartbeatIntervalMs || 10_000);
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Drops the current stream; the run loop reconnects. */
  private restart(error: unknown): void {
    this.report(error);
    this.abort?.abort();
  }

  // ---- dispatch --------------------------------------------------------------

  private receive(event: EventSourceMessage): void {
    if (this.stopped) return;
    this.lastMessageAt = Date.now();
    if (event.id) this.lastId = event.id;
    try {
      // Assigned to the fresh parse, not spread into a new object: V8 gives each object made by a leading spread a hidden class of its own.
      const message: ReceivedMessage = Object.assign(parseEventData(event.data), { eventId: parseInt(event.id ?? '', 10) });
      this.dispatch(message);
    } catch (error) {
      this.report(error);
    }
  }

  private dispatch(message: ReceivedMessage): void {
    const { op, target, body } = message;
    if (op === 'cmd') {
      if (target === 'onConnect') return this.connected(message);
      const handler = this.handlers[target];
      if (isLifecycle(message)) handler?.(message);
      else if (handler) handler(body, message);
      else if (this.receivers.cmd) invokeReceiver(this.receivers.cmd, message);
    } else if (op === 'trigger') {
      for (const listener of this.listeners.get(target) ?? []) listener(body, message);
    } else if (op === 'css') {
      applyCss(message);
    } else if (this.receivers[op]) {
      invokeReceiver(this.receivers[op], message);
    }
    if (!isLifecycle(message)) this.handlers.onMessage?.(message);
  }

  private connected(message: ReceivedMessage): void {
    const body = message.body as Record<string, string>;
    const info: ConnectionInfo = {
      ...(body as unknown as ConnectionInfo),
      heartbeatIntervalMs: parseInt(body.heartbeatIntervalMs ?? '', 10) || 10_000,
      idleTimeoutMs: parseInt(body.idleTimeoutMs ?? '', 10) || 30_000,
    };
    this.info = info;
    this.failures = 0;
    this.channelList = splitList(body.channels);
    this.startHeartbeat(info);
    this.handlers.onConnect?.(info, message);
    for (const waiter of this.connectWaiters.splice(0)) waiter.resolve(info);
  }

  // ---- helpers ---------------------------------------------------------------

  private get credentials(): RequestCredentials {
    return this.options.credentials ?? 'include';
  }

  /**
   * Browsers keep the `ss-id` session cookie themselves; in Node, where fetch
   * has no cookie jar, the client keeps it, so the session (and with it the
   * right to resume its subscription) survives reconnects and failover.
   */
  private async fetcher(url: string, init: RequestInit): Promise<Response> {
    const keepsCookies = typeof document === 'undefined';
    if (keepsCookies && this.session) init = { ...init, headers: { Cookie: `ss-id=${this.session}`, ...(init.headers as Record<string, string>) } };
    const res = await (this.options.fetch ?? fetch)(url, init);
    if (keepsCookies) {
      for (const cookie of res.headers.getSetCookie?.() ?? []) {
        const match = /^ss-id=([^;]+)/.exec(cookie);
        if (match) this.session = match[1];
      }
    }
    return res;
  }

  private async post(url: string, body?: string): Promise<void> {
    const res = await this.fetcher(url, {
      method: 'POST',
      credentials: this.credentials,
      headers: { 'Content-Type': body ? 'application/json' : 'text/plain', ...this.options.headers },
      body: body ?? '',
    });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${url.split('?')[0]}: ${res.status} ${res.statusText}`);
  }

  private requireInfo(): ConnectionInfo {
    if (!this.info) throw new Error('not connected');
    return this.info;
  }

  private report(error: unknown): void {
    this.handlers.onException?.(error);
  }

  /** Waits `ms`, or less when `stop()` is called meanwhile. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
