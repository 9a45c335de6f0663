import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The library logs through Effect's Logger (connection events, retries...): shown for failed tests only.
    silent: "passed-only",
    projects: [
      {
        extends: true,
        test: {
          name: "tests",
          include: ["test/**/*.test.ts"],
          exclude: ["test/faults/**", "test/conformance/**"],
          // Each test file starts its own nats-server(s) on free ports; two cores.
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 0 }
        }
      },
      {
        extends: true,
        test: {
          name: "faults",
          // Servers killed and clusters electing leaders, with time bounds asserted, and the conformance
          // suite's 3-node clusters: after the other tests, one file at a time (elections and cluster
          // API calls slow down on a machine busy with other servers).
          include: ["test/faults/**/*.test.ts", "test/conformance/**/*.test.ts"],
          fileParallelism: false,
          maxWorkers: 1,
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
