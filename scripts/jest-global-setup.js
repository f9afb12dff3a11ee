import { setup as setupTempDir } from './jest-temp-dir.js';
import { startTestServices } from './services/test-services.js';

export default async function setup() {
  // Services first: their directories belong in the real /tmp, not in the run's temp dir.
  await startTestServices();
  setupTempDir();
}
