/** @jest-config-loader-options {"transpileOnly": true} */
import type { Config } from 'jest';
import { createDefaultEsmPreset } from 'ts-jest';

// One config for every workspace. Tests import workspace packages by name; the mapping sends
// them to src/ so that tests never need a build, and strips the `.js` of relative ESM imports.
const config: Config = {
  ...createDefaultEsmPreset({ tsconfig: '<rootDir>/tsconfig.check.json' }),
  testEnvironment: 'node',
  testMatch: ['<rootDir>/packages/*/test/**/*.test.ts', '<rootDir>/examples/*/test/**/*.test.ts'],
  moduleNameMapper: {
    '^@trellis/example-common$': '<rootDir>/examples/common/src/index.ts',
    '^@trellis/([a-z-]+)$': '<rootDir>/packages/$1/src/index.ts',
    '^@trellis/tracing/sdk$': '<rootDir>/packages/tracing/src/sdk/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testTimeout: 20_000,
  // Without Chromium the page tests are skipped; this says so once per run (or fails it under CI).
  globalSetup: '<rootDir>/packages/registry-server/test/headless-chromium.ts',
};

export default config;
