import { conformanceSuite } from '../../conformance/index.js';
import { contractSuite } from '../../contract/index.js';
import { withBrokerCluster } from '../../helpers/broker-servers.js';

withBrokerCluster('redis-cluster', (factory) => {
  contractSuite(factory);
  conformanceSuite(factory);
});
