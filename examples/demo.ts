/**
 * The effect-nats demo: a short end-to-end story on an embedded nats-server.
 *
 * Run: npm run demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Deferred, Effect, Fiber, Layer, Ref, References, Schedule, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { KeyValue, LocalNats, NatsClient, NatsServer, Rpc } from "../src/index.ts"
import * as ConfigService from "./config-service.ts"
import * as Connection from "./connection.ts"
import * as FileStore from "./file-store.ts"
import * as JsPublish from "./jetstream-publish.ts"
import * as JsPullBatch from "./jetstream-pull-batch.ts"
import * as JsPushConsumer from "./jetstream-push-consumer.ts"
import * as JsSetup from "./jetstream-setup.ts"
import * as JobQueue from "./job-queue.ts"
import * as OrderProcessor from "./order-processor.ts"
import * as Pricing from "./pricing.ts"
import * as QueueWorker from "./queue-worker.ts"
import * as TraceOrder from "./trace-order.ts"
import * as Wildcards from "./wildcards.ts"

const chapter = (title: string) => Console.log(`\n== ${title}`)

const story = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  const client = yield* NatsClient.NatsClient
  yield* chapter("1. Connection")
  yield* Console.log(`embedded nats-server ${server.version} at ${server.url} (TLS, JetStream on)`)
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
  yield* Console.log(
    `with no responder -> ${
      none instanceof Pricing.PriceError ? "PriceError" : none._tag === "NatsError" ? none.reason._tag : none._tag
    }`
  )

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

  yield* chapter("6. JetStream: the ORDERS stream")
  const setup = yield* JsSetup.program
  yield* Console.log(JsSetup.describeStream(setup.first))
  yield* Console.log(
    `created or updated twice: ${setup.unchanged ? "the second call found nothing to change" : "it changed!"}`
  )
  const published = yield* JsPublish.program(2000)
  const rate = (run: JsPublish.Run) =>
    `${run.published} in ${run.millis.toFixed(0)} ms (${run.perSecond.toFixed(0)} msg/s)`
  yield* Console.log(`one by one (each ack awaited): ${rate(published.sequential)}`)
  yield* Console.log(
    `publishAll (window ${published.window}):       ${rate(published.pipelined)}, ${
      published.speedUp.toFixed(1)
    }x faster`
  )
  yield* Console.log(
    `every ack checked: ${published.sequential.stored} + ${published.pipelined.stored} stored, ${
      published.sequential.duplicates + published.pipelined.duplicates
    } duplicates; the same msgIds again: ${published.again.duplicates} duplicates, ${published.again.stored} stored`
  )
  const pushed = yield* Effect.scoped(JsPushConsumer.program(10, 3)).pipe(
    // the nak is logged as a warning; this chapter tells it
    Effect.provideService(References.MinimumLogLevel, "Error")
  )
  yield* Console.log(
    `push consumer ${pushed.info.name} (${pushed.info.config.filterSubject}, max deliver ${
      pushed.info.config.maxDeliver ?? "-"
    }): ${
      pushed.deliveries.map((d) => `${d.order_id}#${d.deliveryCount}${d.outcome === "nak" ? " nak" : ""}`).join(", ")
    }`
  )
  yield* Console.log(
    `${pushed.count} orders acked in ${pushed.deliveries.length} deliveries; redelivered: ${
      pushed.redelivered.map((d) => `${d.order_id} (deliveryCount ${d.deliveryCount})`).join(", ")
    }`
  )
  const pulled = yield* Effect.scoped(JsPullBatch.program(120))
  const full = pulled.batches.filter((b) => b.size === 50)
  const last = pulled.batches[pulled.batches.length - 1]
  yield* Console.log(
    `pull consumer order-batch-processor: ${pulled.pendingBefore} pending, fetched 50 at a time (max wait 2 s):`
  )
  yield* Console.log(
    `  ${full.length} full batches, ${
      (full.reduce((t, b) => t + b.millis, 0) / Math.max(1, full.length)).toFixed(1)
    } ms each on average; the last, ${last?.size ?? 0} messages, after ${
      ((last?.millis ?? 0) / 1000).toFixed(1)
    } s; ${pulled.acked} acked, ${pulled.info.numPending} left`
  )

  yield* chapter("7. The orders.created worker on the Processor")
  const processed = yield* Effect.scoped(OrderProcessor.program(20)).pipe(
    // retries and dead letters are logged; this chapter tells them
    Effect.provideService(References.MinimumLogLevel, "Error")
  )
  yield* Console.log(
    `${processed.published} messages: ${processed.processed} orders processed (concurrency 4), ${processed.retried.length} of them after one retry (nak with a 100 ms delay): ${
      processed.retried.join(", ")
    }`
  )
  for (const dead of processed.deadLettered) {
    yield* Console.log(`  dead-lettered stream seq ${dead.sequence}: ${dead.reason} (${dead.error})`)
  }

  yield* chapter("8. Key-Value, Object Store, Effect's PersistedQueue on NATS")
  const settings = yield* KeyValue.make({
    bucket: "demo-config",
    codec: ConfigService.RateLimit,
    config: { history: 5 }
  })
  const first = yield* settings.put("orders.rate", { perMinute: 100 })
  const live = yield* Effect.scoped(
    Effect.gen(function*() {
      const setting = yield* ConfigService.liveSetting(settings, "orders.rate")
      yield* settings.update("orders.rate", { perMinute: 250 }, first)
      return yield* Ref.get(setting.current).pipe(
        Effect.repeat({ until: (now) => now === 250, schedule: Schedule.spaced("10 millis") }),
        Effect.timeout("5 seconds")
      )
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error"))
  )
  const stale = yield* Effect.flip(settings.update("orders.rate", { perMinute: 999 }, first))
  yield* Console.log(
    `KV: orders.rate reloaded live to ${live} per minute by a watch; a write at the old revision ${first}: ${
      stale._tag === "NatsError" ? stale.reason._tag : stale._tag
    }`
  )
  const file = yield* Effect.scoped(FileStore.program(32))
  yield* Console.log(
    `Object Store: a 32 MiB file up and down as Streams, ${
      file.same ? "identical" : "DIFFERENT"
    } (digest checked), memory +${(file.uploadGrowth / 1024 / 1024).toFixed(0)} MiB up, +${
      (file.downloadGrowth / 1024 / 1024).toFixed(0)
    } MiB down`
  )
  const jobs = yield* JobQueue.program.pipe(
    Effect.provide(JobQueue.QueueLayer),
    Effect.provideService(References.MinimumLogLevel, "Error")
  )
  yield* Console.log(
    `PersistedQueue on JetStream: ${jobs.done.length} jobs done (${
      Object.entries(jobs.attempts).map(([job, n]) => `${job} ×${n}`).join(", ")
    }), broken.png dead-lettered after 3 attempts`
  )

  yield* chapter("9. One order's trace across the broker")
  const trace = yield* Effect.scoped(TraceOrder.program).pipe(
    Effect.provideService(References.MinimumLogLevel, "Error")
  )
  yield* Console.log(
    "an HTTP handler publishes; the billing service's Processor (its own connection) charges and acks:"
  )
  for (const line of trace.lines) yield* Console.log(`  ${line}`)
  // the same workload's metrics, as Prometheus would scrape them (counts and sums; buckets left out)
  const metrics = (yield* PrometheusMetrics.format()).split("\n").filter((line) =>
    line.startsWith("effect_nats_") && !line.includes("_bucket{") && /SHOP|shop\./.test(line)
  )
  yield* Console.log("its metrics (effect/observability's Prometheus format):")
  for (const line of metrics) yield* Console.log(`  ${line}`)

  yield* chapter("Done")
  yield* Console.log("releasing: subscriptions drain, the connection closes, the server stops and its store is removed")
})

NodeRuntime.runMain(
  story.pipe(
    Effect.provide(
      JsSetup.JetStreamLayer.pipe(
        Layer.provideMerge(
          LocalNats.layer({ server: { tls: {} }, client: { ...Connection.options, logEvents: false } })
        )
      )
    ),
    // The chapters print their own summary; keep the examples' info logs quiet.
    Effect.provideService(References.MinimumLogLevel, "Warn")
  )
)
