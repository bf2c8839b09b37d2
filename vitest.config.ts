import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-tmpdir.ts'],
    testTimeout: 60_000,
    // Tests never reach the Hub nor read the user's own Hugging Face cache; the Hub tests pass their own environment.
    env: { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: join(tmpdir(), 'quantc-tests-empty-hf-cache') },
  },
});
