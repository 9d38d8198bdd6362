export { ServerEventsClient, type ServerEventsClientOptions, type ServerEventUser } from './client.js';
export type { ConnectionInfo, Handlers, ReceivedMessage, Receiver } from './dispatch.js';
export { parseEventData, type ServerEventMessage } from '../protocol.js';
