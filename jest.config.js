// Jest runs the TypeScript sources as ESM through ts-jest (transpile only: `npm run typecheck` type-checks).
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true }],
  },
  testMatch: ['<rootDir>/__tests__/**/*.test.ts'],
  testTimeout: 120_000,
  globalSetup: '<rootDir>/scripts/jest-global-setup.js',
  globalTeardown: '<rootDir>/scripts/jest-global-teardown.js',
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
  // Integration tests share one Nix store and start real servers: two workers suit the 2-core machines.
  maxWorkers: 2,
};
