import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each test file starts its own nats-server(s) on free ports; two cores.
    fileParallelism: true,
    maxWorkers: 2,
    // The library logs through Effect's Logger (connection events, retries...): shown for failed tests only.
    silent: "passed-only"
  }
})
