import { conformanceSuite } from '../conformance/index.js';
import { contractSuite } from '../contract/index.js';
import { memoryClusters } from '../helpers/cluster.js';

contractSuite(memoryClusters);
conformanceSuite(memoryClusters);
