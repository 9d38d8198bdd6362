import type { Context, Middleware, Next } from 'koa';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { internalsOf } from '../internals.js';
import type { ServerEvents } from '../server-events.js';
import type { ServerEventsStats } from '../stats.js';

export interface MetricsOptions {
  /** Where the metrics are served. Default `/metrics`. */
  path?: string;
  /** A registry of your own (to add the process metrics, say). Default: a new one. */
  registry?: Registry;
  /** The most channels reported by name, largest first, so that one metric cannot grow without bound. Default 100. */
  maxChannels?: number;
}

/** Stats counters that become Prometheus counters: name, help, and the stats field. */
const counters: Array<[string, string, keyof ServerEventsStats]> = [
  ['server_events_connections_total', 'Streams opened on this server.', 'totalConnections'],
  ['server_events_notifications_published_total', 'Notifications this server published to the broker, join/leave/update notices included.', 'notificationsPublished'],
  ['server_events_frames_delivered_total', 'Frames written to this server\'s streams.', 'framesWritten'],
  ['server_events_slow_consumer_disconnects_total', 'Streams dropped because their client stopped reading.', 'slowConsumerDisconnects'],
  ['server_events_replayed_events_total', 'Events sent again from the history after a reconnect (replay hits).', 'replayedEvents'],
  ['server_events_replay_gaps_total', 'cmd.onReset sent because the history could not tell what was missed.', 'replayGaps'],
  ['server_events_broker_disconnects_total', 'Times this server lost its broker connection (each followed by a reconnect, or by an outage still going on).', 'brokerOutages'],
  ['server_events_expired_subscriptions_total', 'Subscriptions removed for missing heartbeats.', 'expiredSubscriptions'],
  ['server_events_errors_total', 'Errors reported by hooks, broker payloads or housekeeping.', 'errors'],
];

/**
 * Opt-in Prometheus metrics for one server: mount the middleware and scrape
 * `GET /metrics`. Counters and gauges are read from `events.stats()` at
 * scrape time, so they cost nothing between scrapes; the delivery lag
 * histogram gets one observation per notification this server delivers.
 */
export function serverEventsMetrics(events: ServerEvents, options: MetricsOptions = {}): { middleware: Middleware; registry: Registry } {
  const registry = options.registry ?? new Registry();
  const path = options.path ?? '/metrics';
  const maxChannels = options.maxChannels ?? 100;

  for (const [name, help, field] of counters) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        // A counter cannot be set; its value is the stats field, which only grows.
        this.reset();
        this.inc(Number(events.stats()[field]));
      },
    });
  }
  new Gauge({
    name: 'server_events_streams',
    help: 'Streams open on this server now.',
    registers: [registry],
    collect() {
      this.set(events.stats().localSubscriptions);
    },
  });
  new Gauge({
    name: 'server_events_channel_streams',
    help: `Streams open on this server per channel (the ${maxChannels} largest channels).`,
    labelNames: ['channel'],
    registers: [registry],
    collect() {
      this.reset();
      const largest = [...internalsOf(events).delivery.channelCounts()].sort((a, b) => b[1] - a[1]).slice(0, maxChannels);
      for (const [channel, count] of largest) this.set({ channel }, count);
    },
  });
  const lag = new Histogram({
    name: 'server_events_delivery_lag_seconds',
    help: 'From the publish on any server to the last write of the notification on this one.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  internalsOf(events).delivery.observeLag((ms) => lag.observe(Math.max(0, ms) / 1000));

  const middleware = async (ctx: Context, next: Next) => {
    if (ctx.path !== path || ctx.method !== 'GET') return next();
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  };
  return { middleware, registry };
}
