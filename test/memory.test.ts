import { conformanceSuite } from './conformance/index.js';
import { memoryClusters } from './helpers/cluster.js';

conformanceSuite(memoryClusters);
