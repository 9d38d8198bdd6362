import type { ClusterFactory } from '../helpers/cluster.js';
import { clusterTests, routingTests } from './cluster.js';
import { endpointTests } from './endpoints.js';
import { notifyTests } from './notify.js';
import { hookTests, presenceTests } from './presence.js';
import { replayTests } from './replay.js';

/**
 * The behaviour every broker must show, as seen by real HTTP clients on real
 * servers. Each broker's test file runs it unchanged with its own factory.
 */
export function conformanceSuite(factory: ClusterFactory): void {
  endpointTests(factory);
  presenceTests(factory);
  hookTests(factory);
  notifyTests(factory);
  clusterTests(factory);
  routingTests(factory);
  replayTests(factory);
}
