import type { Broker } from './broker.js';
import { consoleLogger, defaults, type Logger, type ServerEventsOptions } from './options.js';
import type { SubscriptionInfo } from './records.js';
import { newCounters } from './stats.js';
import type { EventSubscription } from './subscription.js';

/** The timers and limits of one server, with the defaults filled in. */
export interface Settings {
  idleTimeoutMs: number;
  heartbeatIntervalMs: number;
  houseKeepingIntervalMs: number;
  notifyChannelOfSubscriptions: boolean;
  maxMessageBytes: number;
  maxChannelsPerSubscription: number;
  maxRegistrationsInFlight: number;
}

/**
 * What every part of the core shares: the broker, this server's identity
 * and settings, the application's hooks, the counters and the way errors
 * and lifecycle steps are reported.
 */
export interface Core {
  readonly broker: Broker;
  readonly serverId: string;
  readonly settings: Settings;
  readonly options: ServerEventsOptions;
  readonly logger: Logger;
  readonly counters: ReturnType<typeof newCounters>;
  /** Reports an error through `onError`, or logs it. */
  reportError(error: unknown, sub?: EventSubscription): void;
  /** One debug line per step in a subscription's life, for loggers that have `debug` (pino does). */
  logStep(event: string, info: SubscriptionInfo, extra?: Record<string, unknown>): void;
  /** Runs an application hook; what it throws is reported, not passed on. */
  runHook(hook: ((sub: EventSubscription) => void | Promise<void>) | undefined, sub: EventSubscription): Promise<void>;
}

export function createCore(broker: Broker, serverId: string, options: ServerEventsOptions): Core {
  const logger = options.logger ?? consoleLogger;
  const counters = newCounters();
  const settings: Settings = {
    idleTimeoutMs: options.idleTimeoutMs ?? defaults.idleTimeoutMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? defaults.heartbeatIntervalMs,
    houseKeepingIntervalMs: options.houseKeepingIntervalMs ?? defaults.houseKeepingIntervalMs,
    notifyChannelOfSubscriptions: options.notifyChannelOfSubscriptions ?? defaults.notifyChannelOfSubscriptions,
    maxMessageBytes: options.maxMessageBytes ?? defaults.maxMessageBytes,
    maxChannelsPerSubscription: options.maxChannelsPerSubscription ?? defaults.maxChannelsPerSubscription,
    maxRegistrationsInFlight: options.maxRegistrationsInFlight ?? defaults.maxRegistrationsInFlight,
  };
  if (!(Number.isInteger(settings.maxRegistrationsInFlight) && settings.maxRegistrationsInFlight >= 1)) {
    throw new RangeError(`maxRegistrationsInFlight must be a whole number, at least 1, not ${String(options.maxRegistrationsInFlight)}`);
  }
  const reportError = (error: unknown, sub?: EventSubscription) => {
    counters.errors++;
    if (options.onError) options.onError(error, sub);
    else logger.error(`server-events: ${error instanceof Error ? error.message : String(error)}`);
  };
  return {
    broker,
    serverId,
    settings,
    options,
    logger,
    counters,
    reportError,
    logStep(event, info, extra = {}) {
      logger.debug?.(
        { event, id: info.id, userId: info.userId, address: info.userAddress, channels: info.channels, server: serverId, ...extra },
        `subscription ${event}`,
      );
    },
    async runHook(hook, sub) {
      try {
        await hook?.(sub);
      } catch (error) {
        reportError(error, sub);
      }
    },
  };
}
