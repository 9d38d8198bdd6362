// The package root: the server, the embedded memory broker, the HTTP side and the client.
// The Redis and NATS adapters have entries of their own (`server-events/adapters/redis`,
// `server-events/adapters/nats`), so that importing this loads no broker client library.
export type { Broker, BrokerStatus, CappedLists, EventHistory, HistoryEntry, HistoryRead, HistoryRetention, PresenceStore } from './broker.js';
export { brokerFromEnv, brokerKinds, brokerTimeoutFromEnv, createBroker, historyFromEnv, type BrokerKind, type BrokerSettings } from './broker-from-env.js';
export { ConfigError } from './config-error.js';
export { BrokerUnavailableError } from './guarded-broker.js';
export { MemoryBroker, MemoryHub } from '../adapters/memory.js';
export { ServerEvents } from './server-events.js';
export type { ServerEventsStats } from './stats.js';
export { InvalidArgumentError, PayloadTooLargeError, RawJson, rawJson } from './arguments.js';
export type { ServerEventsOptions, Logger } from './options.js';
export { createLogger } from './logging.js';
export { EventSubscription, type EventSink } from './subscription.js';
export type { SubscriptionInfo } from './records.js';
export { defaultProfileUrl, type Identity } from './identity.js';
export { serverEventsMiddleware, serverEventsRoutes, type ServerEventsRoutes } from './http/middleware.js';
export { serverEventsHandler, type HandlerOptions, type ServerEventsHandler } from './http/handler.js';
export type { PublishOptions } from './http/publish.js';
export type { PublishAuthOptions, PublishGrant } from './http/publish-auth.js';
export { ignoreClientDisconnects, isClientDisconnect } from './http/disconnects.js';
export { closeGracefully, shutdownOnSignals, trackConnections, type AnyServer, type ShutdownOptions } from './http/shutdown.js';
export { corsMiddleware, parseOrigins, type CorsOptions } from './http/cors.js';
export { sendError } from './http/errors.js';
export type { ChannelUser, MiddlewareOptions } from './http/options.js';
export { jwtAuthenticate, type JwtOptions } from './http/jwt.js';
export { serverEventsMetrics, type MetricsOptions } from './http/metrics.js';
export { encodeFrame, parseEventData, UNKNOWN_CHANNEL, type ServerEventMessage } from './protocol.js';
export * from './client/index.js';
