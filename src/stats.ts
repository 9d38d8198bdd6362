/** Counters since `start()`; all values are numbers. */
export interface ServerEventsStats {
  broker: string;
  serverId: string;
  localSubscriptions: number;
  brokerTopics: number;
  totalConnections: number;
  totalUnsubscriptions: number;
  notificationsPublished: number;
  /** Payloads this server received from the broker: only for topics its own streams hold. */
  brokerMessagesReceived: number;
  framesWritten: number;
  expiredSubscriptions: number;
  brokerOutages: number;
  /** Streams that took over an existing subscription (continuity). */
  resumedSubscriptions: number;
  /** Events sent again from the history after a reconnect or an outage. */
  replayedEvents: number;
  /** `cmd.onReset` sent because the history could not tell what was missed. */
  replayGaps: number;
  /** Streams dropped because their client stopped reading (see `maxBufferedBytes`). */
  slowConsumerDisconnects: number;
  errors: number;
}

/** The counting part of the stats, all zero. */
export function newCounters() {
  return {
    totalConnections: 0,
    totalUnsubscriptions: 0,
    notificationsPublished: 0,
    brokerMessagesReceived: 0,
    framesWritten: 0,
    expiredSubscriptions: 0,
    brokerOutages: 0,
    resumedSubscriptions: 0,
    replayedEvents: 0,
    replayGaps: 0,
    slowConsumerDisconnects: 0,
    errors: 0,
  };
}
