import type { Context, Next } from 'koa';
import { InvalidArgumentError, type NotifyOptions } from '../arguments.js';
import type { ServerEvents } from '../server-events.js';
import { sendError } from './errors.js';
import { publishAuthenticator, PublishRefusal, type PublishAuthOptions, type PublishGrant } from './publish-auth.js';

/** The publish API's options: who may publish, and how long an idempotency key holds. */
export interface PublishOptions extends PublishAuthOptions {
  /** How long a publish's idempotency key drops a repeat of it. Default 5 minutes; 1 s to 1 hour. */
  idempotencyWindowMs?: number;
}

/** Who a publish goes to: `"all"`, or an object naming exactly one of these. */
const targetKinds = ['channel', 'subscriptionId', 'userId', 'userName', 'sessionId'] as const;
type TargetKind = (typeof targetKinds)[number];

/** A publish request as its JSON body says it. */
interface Publish {
  to: 'all' | { kind: TargetKind; value: string };
  selector: string;
  message: unknown;
  /** For a targeted publish: only the target's streams in this channel get it (a filter; the frame is not prefixed). */
  channel?: string;
  idempotencyKey?: string;
}

const fields = new Set(['to', 'selector', 'message', 'channel', 'idempotencyKey']);
/**
 * Selectors the server's own events use (`cmd.onConnect`, `cmd.onJoin`, ...): a client takes them as the
 * server's word (`cmd.onConnect` names the URLs it heartbeats to), so no publisher may send one.
 */
const reservedSelector = /^cmd\.on[A-Z]/;
/** How deeply a message may nest arrays and objects. */
const maxMessageDepth = 64;
const maxIdempotencyKeyLength = 256;

/**
 * `POST /event-publish`: lets any backend publish, with an API key or a
 * token (see `PublishGrant`). The body:
 *
 *     {"to": {"channel": "home"}, "selector": "cmd.chat", "message": {...}}
 *
 * `to` is `"all"` or one of `{"channel"}`, `{"subscriptionId"}`,
 * `{"userId"}`, `{"userName"}`, `{"sessionId"}`; a targeted publish may add
 * `"channel"` to reach only the target's streams in it. An `Idempotency-Key`
 * header (or `idempotencyKey` field) makes a repeat within the window, on any
 * server, a no-op answered `{"published": false, "duplicate": true}`: the
 * history drops it (see `EventHistory.publish`), also when the first was
 * carried out after its caller had been told 503.
 */
export class PublishRoute {
  private readonly authenticate: (ctx: Context) => Promise<PublishGrant>;
  private readonly windowMs: number;

  constructor(
    private readonly events: ServerEvents,
    options: PublishOptions,
  ) {
    this.authenticate = publishAuthenticator(options);
    this.windowMs = options.idempotencyWindowMs ?? 300_000;
    if (!(this.windowMs >= 1000 && this.windowMs <= 3_600_000)) throw new Error('idempotencyWindowMs must be from 1,000 to 3,600,000 ms');
  }

  /** Before the body is read: the method and the credentials. */
  authorize = async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.method !== 'POST') {
      ctx.set('Allow', 'POST');
      return sendError(ctx, 405, 'Publish with POST');
    }
    try {
      ctx.state.publishGrant = await this.authenticate(ctx);
    } catch (error) {
      if (error instanceof PublishRefusal) return sendError(ctx, error.status, error.message);
      throw error;
    }
    if (!ctx.is('application/json')) return sendError(ctx, 415, 'The body must be JSON (Content-Type: application/json)');
    await next();
  };

  publish = async (ctx: Context): Promise<void> => {
    const grant = ctx.state.publishGrant as PublishGrant;
    const request = parsePublish(ctx.request.body, ctx.get('Idempotency-Key') || undefined);
    const channel = request.to !== 'all' && request.to.kind === 'channel' ? request.to.value : request.channel;
    if (!grant.mayPublishTo(channel)) {
      return sendError(ctx, 403, channel === undefined ? 'Not allowed to publish beyond channels' : `Not allowed to publish to channel '${channel}'`);
    }
    // Idempotency keys are kept per credential: one publisher cannot claim (and so drop) another's.
    const idempotencyKey = request.idempotencyKey && `${grant.scope}:${request.idempotencyKey}`;
    const published = await this.send(request, { idempotencyKey, idempotencyWindowMs: this.windowMs });
    ctx.body = published ? { published: true } : { published: false, duplicate: true };
  };

  private send({ to, selector, message, channel }: Publish, options: NotifyOptions): Promise<boolean> {
    if (to === 'all') return this.events.notifyAll(selector, message, options);
    switch (to.kind) {
      case 'channel':
        return this.events.notifyChannel(to.value, selector, message, options);
      case 'subscriptionId':
        return this.events.notifySubscription(to.value, selector, message, channel, options);
      case 'userId':
        return this.events.notifyUserId(to.value, selector, message, channel, options);
      case 'userName':
        return this.events.notifyUserName(to.value, selector, message, channel, options);
      case 'sessionId':
        return this.events.notifySession(to.value, selector, message, channel, options);
    }
  }
}

/** Reads and checks a publish body; throws `InvalidArgumentError` (400) naming what is wrong. */
function parsePublish(body: unknown, headerKey: string | undefined): Publish {
  const fail = (message: string): never => {
    throw new InvalidArgumentError(message);
  };
  if (!body || typeof body !== 'object' || Array.isArray(body)) fail('The body must be a JSON object');
  const given = body as Record<string, unknown>;
  const unknown = Object.keys(given).find((name) => !fields.has(name));
  if (unknown !== undefined) fail(`Unknown field '${unknown}': a publish has ${[...fields].join(', ')}`);
  const { selector, message, channel, idempotencyKey } = given;
  if (typeof selector !== 'string' || selector === '') fail("'selector' must be a non-empty string, e.g. \"cmd.chat\"");
  if (reservedSelector.test(selector as string)) fail(`'${selector}' is one of the server's own events: a publisher may not send cmd.on… selectors`);
  if (nestedDeeperThan(message, maxMessageDepth)) fail(`'message' nests deeper than ${maxMessageDepth} levels`);
  if (channel !== undefined && (typeof channel !== 'string' || channel === '')) fail("'channel' must be a non-empty string");
  const to = parseTarget(given.to, fail);
  if (channel !== undefined && (to === 'all' || to.kind === 'channel')) fail("'channel' narrows a targeted publish; to reach a channel, send \"to\": {\"channel\": ...}");
  if (idempotencyKey !== undefined && typeof idempotencyKey !== 'string') fail("'idempotencyKey' must be a string");
  const key = (idempotencyKey as string | undefined) ?? headerKey;
  if (key !== undefined && !(key.length > 0 && key.length <= maxIdempotencyKeyLength && /^[\x21-\x7e]+$/.test(key))) {
    fail(`An idempotency key must be 1 to ${maxIdempotencyKeyLength} printable ASCII characters without spaces`);
  }
  if (idempotencyKey !== undefined && headerKey !== undefined && idempotencyKey !== headerKey) fail('The Idempotency-Key header and the idempotencyKey field differ');
  return { to, selector: selector as string, message, channel: channel as string | undefined, idempotencyKey: key };
}

function nestedDeeperThan(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth === 0) return true;
  return Object.values(value as object).some((inner) => nestedDeeperThan(inner, depth - 1));
}

function parseTarget(to: unknown, fail: (message: string) => never): Publish['to'] {
  const expected = `'to' must be "all" or an object with one of ${targetKinds.join(', ')}`;
  if (to === 'all') return to;
  if (!to || typeof to !== 'object' || Array.isArray(to)) return fail(expected);
  const entries = Object.entries(to as Record<string, unknown>);
  if (entries.length !== 1) return fail(expected);
  const [kind, value] = entries[0]!;
  if (!(targetKinds as readonly string[]).includes(kind)) return fail(expected);
  if (typeof value !== 'string' || value === '') return fail(`'to.${kind}' must be a non-empty string`);
  return { kind: kind as TargetKind, value };
}
