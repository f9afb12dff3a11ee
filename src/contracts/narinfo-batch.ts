/**
 * The batch narinfo lookup route as server and proxy both know it: where it is and how many hash
 * parts one request may name.
 */
export const NARINFO_BATCH_PATH = '/_api/v1/narinfos';

/** Hash parts per request: far more than Nix has in flight (http-connections, 25 by default). */
export const NARINFO_BATCH_LIMIT = 1000;
