/**
 * The effect-nats demo: a short end-to-end story on an embedded nats-server.
 *
 * Run: npm run demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Deferred, Effect, Fiber, References, Schedule, Stream } from "effect"
import { LocalNats, NatsClient, NatsServer, Rpc } from "../src/index.ts"
import * as Connection from "./connection.ts"
import * as Pricing from "./pricing.ts"
import * as QueueWorker from "./queue-worker.ts"
import * as Wildcards from "./wildcards.ts"

const chapter = (title: string) => Console.log(`\n== ${title}`)

const story = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  const client = yield* NatsClient.NatsClient
  yield* chapter("1. Connection")
  yield* Console.log(`embedded nats-server ${server.version} at ${server.url} (JetStream on)`)
  const rtt = yield* client.rtt
  yield* Console.log(`connected as "${Connection.options.name}", rtt ${rtt.toString()}`)

  yield* chapter("2. Wildcards")
  const routed = yield* Effect.scoped(Wildcards.program)
  yield* Console.log(`published: ${Wildcards.published.join(", ")}`)
  for (const [pattern, subjects] of Object.entries(routed)) {
    yield* Console.log(`  ${pattern.padEnd(18)} <- ${subjects.join(", ")}`)
  }

  yield* chapter("3. Queue group workers.orders")
  const shared = yield* Effect.scoped(QueueWorker.program(3, 3000))
  yield* Console.log(
    `${shared.orders} orders published; ${shared.processed} deliveries, ${shared.distinct} distinct orders, ${shared.duplicates} duplicates`
  )
  for (const [worker, count] of Object.entries(shared.perWorker).sort()) {
    yield* Console.log(`  ${worker}: ${count} (${((100 * count) / shared.orders).toFixed(1)}%)`)
  }

  yield* chapter("4. Typed RPC pricing.lookup")
  const rpc = yield* Effect.scoped(Pricing.program(1000))
  yield* Console.log(`${rpc.calls} sequential calls: p50 ${rpc.p50_ms.toFixed(3)} ms, p99 ${rpc.p99_ms.toFixed(3)} ms`)
  yield* Console.log(`unknown product -> ${rpc.unknown}`)
  const none = yield* Rpc.call(Pricing.PriceLookup, { product_id: "p-1" }).pipe(Effect.flip)
  yield* Console.log(`with no responder -> ${none._tag === "NatsError" ? none.reason._tag : none._tag}`)

  yield* chapter("5. Surviving a server restart")
  yield* Effect.scoped(Effect.gen(function*() {
    const events: Array<string> = []
    const reconnected = yield* Deferred.make<void>()
    yield* client.events.pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => events.push(event._tag)).pipe(
          Effect.andThen(event._tag === "Reconnected" ? Deferred.succeed(reconnected, undefined) : Effect.void)
        )
      ),
      Effect.forkScoped
    )
    const alerts = yield* client.subscribeScoped("alerts.>")
    const received = yield* alerts.pipe(
      Stream.take(2),
      Stream.map((m) => m.string()),
      Stream.runCollect,
      Effect.forkScoped
    )
    yield* client.publish("alerts.before", "sent before the restart")
    yield* client.flush
    yield* server.restart()
    yield* Deferred.await(reconnected).pipe(Effect.timeout("20 seconds"))
    // Interest is restored as part of the reconnect; publish until it lands.
    yield* client.publish("alerts.after", "sent after the restart").pipe(
      Effect.andThen(client.flush),
      Effect.repeat({ schedule: Schedule.spaced("100 millis"), while: () => received.pollUnsafe() === undefined }),
      Effect.timeout("10 seconds"),
      Effect.ignore
    )
    const messages = yield* Fiber.join(received)
    yield* Console.log(`connection events: ${events.join(" -> ")}`)
    yield* Console.log(`the same subscription received: ${messages.join(" | ")}`)
  }))

  yield* chapter("Done")
  yield* Console.log("releasing: subscriptions drain, the connection closes, the server stops and its store is removed")
})

NodeRuntime.runMain(
  story.pipe(
    Effect.provide(LocalNats.layer({ client: { ...Connection.options, logEvents: false } })),
    // The chapters print their own summary; keep the examples' info logs quiet.
    Effect.provideService(References.MinimumLogLevel, "Warn")
  )
)
