/**
 * Processing under pressure (single node): (e) a Processor's scope closed
 * while it is busy, a second Processor on the same consumer started at that
 * moment (a rolling deploy); (f) slow consumers: a core subscription with a
 * small buffer dropping its oldest messages under a fast publisher, and a
 * Processor whose handlers outlast the consumer's ack wait.
 */
import { Duration, Effect, Exit, Fiber, Scope, Stream } from "effect"
import { Consumer, NatsServer } from "../../src/index.ts"
import type { Tally } from "./common.ts"
import { connect, messages, phase, publish, readStored, services, settled, until } from "./common.ts"
import { makeWatch, startProcessor } from "./processor.ts"

export const processorShutdown = (tally: Tally): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    tally.consumes = true
    const server = yield* NatsServer.make()
    const svc = yield* services(yield* connect([server.url]))
    yield* svc.jsm.createOrUpdateStream({ name: "CHAOS_E", subjects: ["chaos_e.>"] })
    // a short ack wait: a message held past it without `working` would be redelivered behind our back
    yield* svc.jsm.createOrUpdateConsumer("CHAOS_E", { durable: "worker", ackWait: Duration.seconds(2) })
    const count = 3000
    yield* publish(svc, tally, messages(tally, "chaos_e", count))
    const watch = makeWatch()
    // 15 ms per message, every 100th takes 3 s (longer than the ack wait and than the grace period)
    const work = (id: number) => id % 100 === 0 ? "3 seconds" : "15 millis"
    const first = yield* Scope.make()
    const consumerA = yield* Consumer.make({ stream: "CHAOS_E", durable: "worker" }).pipe(
      Effect.provide(svc.context),
      Scope.provide(first)
    )
    yield* startProcessor(svc, consumerA, tally, watch, {
      tag: "A",
      concurrency: 16,
      work,
      gracePeriod: "2 seconds",
      success: false
    }).pipe(Scope.provide(first))
    yield* until(() => tally.completed.size >= 1000, 20_000)
    // the rolling deploy: A is told to stop while busy, B starts on the same consumer at once
    tally.fault()
    tally.arm()
    const drain = yield* Scope.close(first, Exit.void).pipe(
      Effect.andThen(Effect.sync(() => Date.now() - tally.faultAt)),
      Effect.forkScoped
    )
    const inFlightAtClose = watch.running.size
    const consumerB = yield* Consumer.make({ stream: "CHAOS_E", durable: "worker" }).pipe(Effect.provide(svc.context))
    yield* startProcessor(svc, consumerB, tally, watch, { tag: "B", concurrency: 16, work })
    const drainMs = yield* Fiber.join(drain)
    yield* phase(tally, "settle", until(() => tally.completed.size >= tally.acked.size, 40_000), 42)
    const info = yield* settled(svc, "CHAOS_E", "worker", 10)
    yield* readStored(svc, "CHAOS_E", tally)
    Object.assign(tally.extra, {
      drainMs,
      inFlightAtClose,
      concurrentDuplicates: watch.concurrentDuplicates,
      redelivered: watch.redeliveries,
      serverRedelivered: info?.numRedelivered,
      outcomes: watch.outcomes
    })
  })

/** A core subscription with a 100-message buffer and `dropOldest`, 200,000 messages published as fast as possible. */
export const slowSubscriber = (tally: Tally): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    tally.consumes = true
    tally.jetstream = false
    const server = yield* NatsServer.make({ jetstream: false })
    let slowEvents = 0
    let reportedDropped = 0
    const sub = yield* connect([server.url], {
      onEvent: (event) =>
        Effect.sync(() => {
          if (event._tag !== "SlowConsumer") return
          slowEvents++
          reportedDropped = Math.max(reportedDropped, event.dropped)
        })
    })
    const pub = yield* connect([server.url])
    const count = 200_000
    const bufferSize = 100
    // the subscription's own scope: its release reports the end of the last overflow
    const subscription = yield* Scope.make()
    const received = yield* sub.subscribeScoped("slow.x", { bufferSize, overflow: "dropOldest" }).pipe(
      Scope.provide(subscription)
    )
    let got = 0
    let lastId = -1
    let lastAt = Date.now()
    yield* received.pipe(
      Stream.runForEach((m) =>
        Effect.sync(() => {
          got++
          lastId = new DataView(m.data.buffer, m.data.byteOffset, 4).getUint32(0)
          lastAt = Date.now()
          tally.delivered(lastId)
          // 20 µs of work per message: slower than the publisher
          const end = performance.now() + 0.02
          while (performance.now() < end) {
            // the subscriber's work
          }
        })
      ),
      Effect.forkIn(subscription)
    )
    const payload = (i: number) => {
      const bytes = new Uint8Array(16)
      new DataView(bytes.buffer).setUint32(0, i)
      return bytes
    }
    const started = Date.now()
    yield* pub.publishAll(
      Stream.range(0, count - 1).pipe(
        Stream.tap((i) => Effect.sync(() => tally.sent = i + 1)),
        Stream.map((i) => ({ subject: "slow.x", payload: payload(i) }))
      )
    )
    yield* pub.flush
    const publishMs = Date.now() - started
    // settled: nothing received for 500 ms
    yield* until(() => Date.now() - lastAt > 500, 30_000)
    yield* Scope.close(subscription, Exit.void)
    // events reach the handler asynchronously
    yield* until(() => reportedDropped >= tally.sent - got, 2_000).pipe(Effect.ignore)
    Object.assign(tally.extra, {
      bufferSize,
      publishMs,
      received: got,
      droppedActual: tally.sent - got,
      droppedReported: reportedDropped,
      slowConsumerEvents: slowEvents,
      lastReceived: lastId === count - 1 ? "yes" : `no (${lastId})`
    })
    tally.unaccounted = tally.sent - got - reportedDropped
  })

/** Handlers of 1.5 s under a 1 s ack wait, 4 at once, 24 messages: most wait far past the ack wait. */
export const slowProcessor = (tally: Tally): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    tally.consumes = true
    const server = yield* NatsServer.make()
    const svc = yield* services(yield* connect([server.url]))
    yield* svc.jsm.createOrUpdateStream({ name: "CHAOS_F", subjects: ["chaos_f.>"] })
    yield* svc.jsm.createOrUpdateConsumer("CHAOS_F", { durable: "worker", ackWait: Duration.seconds(1) })
    const count = 24
    yield* publish(svc, tally, messages(tally, "chaos_f", count))
    const consumer = yield* Consumer.make({ stream: "CHAOS_F", durable: "worker" }).pipe(Effect.provide(svc.context))
    const watch = makeWatch()
    const started = Date.now()
    yield* startProcessor(svc, consumer, tally, watch, { tag: "p", concurrency: 4, work: () => "1500 millis" })
    yield* phase(tally, "settle", until(() => tally.completed.size >= count, 40_000), 42)
    const elapsed = Date.now() - started
    const info = yield* settled(svc, "CHAOS_F", "worker", 10)
    yield* readStored(svc, "CHAOS_F", tally)
    Object.assign(tally.extra, {
      ackWaitMs: 1000,
      handlerMs: 1500,
      processMs: elapsed,
      redelivered: watch.redeliveries,
      serverRedelivered: info?.numRedelivered,
      concurrentDuplicates: watch.concurrentDuplicates,
      outcomes: watch.outcomes
    })
  })
