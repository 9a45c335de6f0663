/**
 * Runs one example: `npm run example -- <name>`. Each example runs on an
 * embedded nats-server unless NATS_URL is set.
 */
import { NodeRuntime } from "@effect/platform-node"
import type { Effect } from "effect"

const examples: Record<string, () => Promise<{ readonly main: Effect.Effect<unknown, unknown> }>> = {
  connection: () => import("./connection.ts"),
  auth: () => import("./auth.ts"),
  wildcards: () => import("./wildcards.ts"),
  "queue-worker": () => import("./queue-worker.ts"),
  pricing: () => import("./pricing.ts"),
  "pricing-service": () => import("./pricing-service.ts"),
  "rpc-group": () => import("./rpc-group.ts"),
  "jetstream-setup": () => import("./jetstream-setup.ts"),
  "jetstream-publish": () => import("./jetstream-publish.ts"),
  "jetstream-push-consumer": () => import("./jetstream-push-consumer.ts"),
  "jetstream-pull-batch": () => import("./jetstream-pull-batch.ts"),
  "order-processor": () => import("./order-processor.ts"),
  "config-service": () => import("./config-service.ts"),
  "file-store": () => import("./file-store.ts"),
  "job-queue": () => import("./job-queue.ts"),
  "trace-order": () => import("./trace-order.ts"),
  observability: () => import("./observability.ts")
}

const name = process.argv[2]
const load = name === undefined ? undefined : examples[name]
if (load === undefined) {
  console.error(`usage: npm run example -- <${Object.keys(examples).join(" | ")}>`)
  process.exit(2)
} else {
  const { main } = await load()
  NodeRuntime.runMain(main)
}
