/**
 * (g) A stalled network: the client reaches the (single) server only
 * through the fault proxy, which stops forwarding for 4 s (sockets kept
 * open) in the middle of a `publishAll`, while a Processor on the same
 * connection consumes. The client must notice by its pings (500 ms
 * interval), reconnect once the proxy forwards again, and store and process
 * every message once.
 */
import type { Scope } from "effect"
import { Duration, Effect, Fiber } from "effect"
import { Consumer, NatsServer } from "../../src/index.ts"
import * as FaultProxy from "../../test/support/faultProxy.ts"
import type { Tally } from "./common.ts"
import { connect, messages, phase, publish, readStored, services, settled, until } from "./common.ts"
import { makeWatch, startProcessor } from "./processor.ts"

export const stalledNetwork = (tally: Tally): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    tally.consumes = true
    const server = yield* NatsServer.make()
    const proxy = yield* FaultProxy.make(server.url)
    let disconnectedAt = 0
    let reconnectedAt = 0
    let resumedAt = 0
    const client = yield* connect([proxy.url], {
      pingInterval: "500 millis",
      connectAttemptTimeout: "1 second",
      onEvent: (event) =>
        Effect.sync(() => {
          if (tally.faultAt === 0) return
          if (event._tag === "Disconnected" && disconnectedAt === 0) disconnectedAt = Date.now()
          if (event._tag === "Reconnected" && reconnectedAt === 0) reconnectedAt = Date.now()
        })
    })
    const svc = yield* services(client)
    yield* svc.jsm.createOrUpdateStream({ name: "CHAOS_G", subjects: ["chaos_g.>"] })
    yield* svc.jsm.createOrUpdateConsumer("CHAOS_G", { durable: "worker", ackWait: Duration.seconds(5) })
    const consumer = yield* Consumer.make({ stream: "CHAOS_G", durable: "worker" }).pipe(Effect.provide(svc.context))
    const watch = makeWatch()
    yield* startProcessor(svc, consumer, tally, watch, {
      tag: "p",
      concurrency: 4,
      work: () => "1 millis",
      success: false
    })
    const fault = Effect.gen(function*() {
      yield* proxy.stall()
      tally.fault()
      yield* Effect.sleep("4 seconds")
      yield* proxy.resume()
      resumedAt = Date.now()
      // nothing got through while stalled: every ack from now on is the resumed network's
      tally.arm()
    })
    const count = 6000
    const publisher = yield* publish(
      svc,
      tally,
      messages(tally, "chaos_g", count, { perTick: 20, tickMs: 10 }),
      (acked) =>
        Effect.suspend(() => {
          tally.success()
          return acked === 1500 ? Effect.asVoid(Effect.forkScoped(fault)) : Effect.void
        })
    ).pipe(Effect.forkScoped)
    yield* phase(tally, "publish", Fiber.join(publisher), 45)
    yield* phase(tally, "settle", until(() => [...tally.acked].every((id) => tally.completed.has(id)), 20_000), 22)
    const info = yield* settled(svc, "CHAOS_G", "worker", 10)
    // the dead connection's bytes reach the server after the resume: wait until it has ended
    yield* until(() => proxy.open() <= 1, 5_000)
    yield* readStored(svc, "CHAOS_G", tally)
    Object.assign(tally.extra, {
      stallMs: resumedAt === 0 ? undefined : resumedAt - tally.faultAt,
      detectedMs: disconnectedAt === 0 ? undefined : disconnectedAt - tally.faultAt,
      reconnectedAfterResumeMs: reconnectedAt === 0 || resumedAt === 0 ? undefined : reconnectedAt - resumedAt,
      proxyConnections: proxy.accepted(),
      redelivered: watch.redeliveries,
      serverRedelivered: info?.numRedelivered,
      outcomes: watch.outcomes
    })
  })
