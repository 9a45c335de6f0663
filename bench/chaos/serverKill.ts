/**
 * Single-node faults: (a) SIGKILL of the server while a Processor works
 * (and a publisher keeps publishing); the server is started again on the
 * same file store after a second, the Processor keeps going. (b) A graceful
 * restart (SIGTERM, start again) in the middle of a `publishAll`.
 */
import { Duration, Effect, Fiber } from "effect"
import { Consumer, NatsServer } from "../../src/index.ts"
import type { Tally } from "./common.ts"
import { connect, messages, phase, publish, readStored, services, settled, until } from "./common.ts"
import { makeWatch, startProcessor } from "./processor.ts"

/** A client on `url` that notes its first reconnect after the fault (ms from the fault). */
const connectNotingReconnect = (url: string, tally: Tally) =>
  Effect.gen(function*() {
    let reconnectedAt = 0
    const client = yield* connect([url], {
      onEvent: (event) =>
        Effect.sync(() => {
          if (event._tag === "Reconnected" && tally.faultAt > 0 && reconnectedAt === 0) reconnectedAt = Date.now()
        })
    })
    return { client, reconnectMs: () => reconnectedAt === 0 ? undefined : reconnectedAt - tally.faultAt }
  })

export const processorKill = (tally: Tally) =>
  Effect.gen(function*() {
    tally.consumes = true
    const server = yield* NatsServer.make()
    const { client, reconnectMs } = yield* connectNotingReconnect(server.url, tally)
    const svc = yield* services(client)
    yield* svc.jsm.createOrUpdateStream({ name: "CHAOS_A", subjects: ["chaos_a.>"], storage: "file" })
    yield* svc.jsm.createOrUpdateConsumer("CHAOS_A", { durable: "worker", ackWait: Duration.seconds(5) })
    const consumer = yield* Consumer.make({ stream: "CHAOS_A", durable: "worker" }).pipe(Effect.provide(svc.context))
    const watch = makeWatch()
    yield* startProcessor(svc, consumer, tally, watch, { tag: "p", concurrency: 4, work: () => "1 millis" })

    const count = 6000
    const publisher = yield* publish(svc, tally, messages(tally, "chaos_a", count, { perTick: 20, tickMs: 10 })).pipe(
      Effect.forkScoped
    )
    yield* phase(
      tally,
      "fault",
      Effect.gen(function*() {
        yield* until(() => tally.completed.size >= 1500, 20_000)
        tally.fault()
        yield* server.kill(0)
        yield* Effect.sleep("1 second")
        yield* server.start(0)
        // from here on, an acked outcome is a message the restarted server delivered
        tally.arm()
      }),
      30
    )
    yield* phase(tally, "publish", Fiber.join(publisher), 30)
    yield* phase(tally, "settle", until(() => [...tally.acked].every((id) => tally.completed.has(id)), 30_000), 32)
    const info = yield* settled(svc, "CHAOS_A", "worker", 10)
    yield* readStored(svc, "CHAOS_A", tally)
    Object.assign(tally.extra, {
      reconnectMs: reconnectMs(),
      redelivered: watch.redeliveries,
      serverRedelivered: info?.numRedelivered,
      outcomes: watch.outcomes
    })
  })

export const gracefulRestart = (tally: Tally) =>
  Effect.gen(function*() {
    const server = yield* NatsServer.make()
    const { client, reconnectMs } = yield* connectNotingReconnect(server.url, tally)
    const svc = yield* services(client)
    yield* svc.jsm.createOrUpdateStream({ name: "CHAOS_B", subjects: ["chaos_b.>"], storage: "file" })
    const count = 8000
    let stoppedAt = 0
    const fault = Effect.gen(function*() {
      tally.fault()
      yield* server.stop(0)
      stoppedAt = Date.now()
      // the server is gone: every ack from now on comes from the restarted one
      tally.arm()
      yield* server.start(0)
    }).pipe(Effect.catch((e) => Effect.sync(() => tally.errors.push(`restart: ${e.message}`))))
    yield* phase(
      tally,
      "publish",
      publish(svc, tally, messages(tally, "chaos_b", count), (acked) =>
        Effect.suspend(() => {
          tally.success()
          return acked === 2000 ? Effect.asVoid(Effect.forkScoped(fault)) : Effect.void
        })),
      45
    )
    yield* readStored(svc, "CHAOS_B", tally)
    Object.assign(tally.extra, {
      stopMs: stoppedAt === 0 ? undefined : stoppedAt - tally.faultAt,
      reconnectMs: reconnectMs()
    })
  })
