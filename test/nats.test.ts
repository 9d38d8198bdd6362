import { conformanceSuite } from './conformance/index.js';
import { withBrokerServer } from './helpers/broker-servers.js';

withBrokerServer('nats', (factory) => conformanceSuite(factory));
