import { teardown as teardownTempDir } from './jest-temp-dir.js';
import { stopTestServices } from './services/test-services.js';

export default async function teardown() {
  await stopTestServices();
  teardownTempDir();
}
