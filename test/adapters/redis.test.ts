import { conformanceSuite } from '../conformance/index.js';
import { contractSuite } from '../contract/index.js';
import { withBrokerServer } from '../helpers/broker-servers.js';

withBrokerServer('redis', (factory) => {
  contractSuite(factory);
  conformanceSuite(factory);
});
