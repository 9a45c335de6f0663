/**
 * Subject hierarchies and wildcards: `service.*.events` (exactly one token)
 * and `logs.>` (one or more tokens).
 *
 * Run: npm run example -- wildcards
 */
import { Effect, Fiber, Stream } from "effect"
import { LocalNats, NatsClient } from "../src/index.ts"

export const published = [
  "service.orders.events",
  "service.payments.events",
  "service.orders.internal.events",
  "logs.api",
  "logs.api.errors",
  "logs"
] as const

/** Subscribes to both patterns, publishes every subject once, and reports who got what. */
export const program = Effect.gen(function*() {
  const client = yield* NatsClient.NatsClient
  const events = yield* client.subscribeScoped("service.*.events")
  const logs = yield* client.subscribeScoped("logs.>")
  const collect = (stream: typeof events, n: number) =>
    stream.pipe(Stream.take(n), Stream.map((msg) => msg.subject), Stream.runCollect, Effect.forkScoped)
  const eventsFiber = yield* collect(events, 2)
  const logsFiber = yield* collect(logs, 2)
  for (const subject of published) yield* client.publish(subject, `hello from ${subject}`)
  const routed = {
    "service.*.events": yield* Fiber.join(eventsFiber),
    "logs.>": yield* Fiber.join(logsFiber)
  }
  for (const [pattern, subjects] of Object.entries(routed)) {
    yield* Effect.log(`${pattern} received ${subjects.join(", ")}`)
  }
  return routed
})

export const main = Effect.scoped(program).pipe(Effect.provide(LocalNats.layerConfig()))
