/** The retention keys of the server config: values, defaults, and errors that point at the line. */
import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../../../src/server/config/config-schema.js';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { retentionFor } from '../../../src/server/retention/slices.js';

const SLICES = `retention: { max_age: 30d, max_size: 50GiB }
gc_interval: 15m
gc_grace: 2h
slices:
  - name: acme/app
    read: [{ repository_owner_id: "1" }]
    write: [{ repository_id: "2", ref: refs/heads/main }]
    retention: { max_age: 90d, max_size: 200GiB }
    pull_requests: { ttl: 7d }
  - name: \${repository}
    write: [{ event_name: push }]
    retention: { max_size: 1GiB }
`;

describe('retention config', () => {
  it('reads the server default, per-slice overrides, pull requests, interval and grace', () => {
    const config = parseConfig(SLICES, 'sluice.yml');
    expect([config.retention, config.gcIntervalSeconds, config.gcGraceSeconds]).toEqual([
      { maxAgeSeconds: 30 * 86400, maxSizeBytes: 50 * 1024 ** 3 },
      900,
      7200,
    ]);
    expect(retentionFor(config, 'acme/app')).toEqual({
      policy: { maxAgeSeconds: 90 * 86400, maxSizeBytes: 200 * 1024 ** 3 },
    });
    expect(retentionFor(config, 'acme/app/pr-12')).toEqual({
      policy: { maxAgeSeconds: 90 * 86400, maxSizeBytes: 200 * 1024 ** 3 },
      pullRequestTtlSeconds: 7 * 86400,
    });
    // A template's slices take its retention; others the server's.
    expect(retentionFor(config, 'other/repo')).toEqual({ policy: { maxSizeBytes: 1024 ** 3 } });
    expect(retentionFor(parseConfig(''), 'x')).toEqual({ policy: {} });
    expect(parseConfig('retention: { max_age: 1y }\n').retention).toEqual({ maxAgeSeconds: 365 * 86400 });
  });

  it.each([
    ['retention: { max_age: soon }\n', /^sluice.yml:1: retention.max_age: "soon" is not a duration/],
    ['retention:\n  max_size: lots\n', /^sluice.yml:2: retention.max_size: "lots" is not a size/],
    ['retention: { keep: 3 }\n', /retention.keep: unknown key \(expected one of: max_age, max_size\)/],
    ['gc_interval: never\n', /gc_interval: "never" is not a duration/],
    [
      'slices:\n  - name: a\n    read: [{ x: "1" }]\n    pull_requests: {}\n',
      /^sluice.yml:4: slices\[0\].pull_requests: needs ttl/,
    ],
    [
      'slices:\n  - name: "a/*"\n    read: [{ x: "1" }]\n    pull_requests: { ttl: 7d }\n',
      /slices\[0\].pull_requests: needs a plain slice name with read rules/,
    ],
    [
      'slices:\n  - name: a/pr-3\n    read: [{ x: "1" }]\n',
      /slices\[0\].name: 'a\/pr-3' ends in pr-<number>/,
    ],
    [
      'slices:\n  - name: a\n    read: [{ x: "1" }]\n    retention: { max_age: 0d }\n',
      /slices\[0\].retention.max_age: "0d" is not a duration/,
    ],
  ])('refuses %j', (yaml, message) => {
    expect(() => parseConfig(yaml, 'sluice.yml')).toThrow(ConfigError);
    expect(() => parseConfig(yaml, 'sluice.yml')).toThrow(message);
  });
});
