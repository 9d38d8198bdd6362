import { conformanceSuite } from './conformance/index.js';
import { withBrokerServer } from './helpers/broker-servers.js';

withBrokerServer('redis', (factory) => conformanceSuite(factory));
