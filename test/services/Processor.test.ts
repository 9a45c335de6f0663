import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Layer, Metric, Redacted, Schedule, Schema, Scope, Stream } from "effect"
import {
  Auth,
  Consumer,
  JetStream,
  JetStreamManager,
  LocalNats,
  NatsClient,
  NatsServer,
  Processor
} from "../../src/index.ts"

const Order = Schema.Struct({ id: Schema.Int })
type Order = typeof Order.Type

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const Env = Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer).pipe(
  Layer.provideMerge(LocalNats.layer())
)

/** A fresh stream `name` on `name.>` and a durable consumer on it. */
const setup = (name: string, consumer: { readonly ackWait?: Duration.Input; readonly maxDeliver?: number } = {}) =>
  Effect.gen(function*() {
    const jsm = yield* JetStreamManager.JetStreamManager
    yield* jsm.createOrUpdateStream({ name, subjects: [`${name}.>`] })
    yield* jsm.createOrUpdateConsumer(name, {
      durable: `${name}-worker`,
      ackWait: Duration.fromInputUnsafe(consumer.ackWait ?? "5 seconds"),
      maxDeliver: consumer.maxDeliver ?? -1
    })
    return yield* Consumer.make({ stream: name, durable: `${name}-worker` })
  })

const publishOrders = (subject: string, ids: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const js = yield* JetStream.JetStream
    yield* Stream.runDrain(
      js.publishAll(ids.map((id) => ({ subject, payload: encoder.encode(JSON.stringify({ id })) })))
    )
  })

const consumerState = (stream: string) =>
  Effect.gen(function*() {
    const jsm = yield* JetStreamManager.JetStreamManager
    const info = yield* jsm.consumerInfo(stream, `${stream}-worker`)
    return { pending: info.numPending, ackPending: info.numAckPending, redelivered: info.numRedelivered }
  })

/** The consumer's state once nothing is pending or un-acked (acks are asynchronous), or the last one seen. */
const settled = (stream: string) =>
  Effect.gen(function*() {
    const state = yield* consumerState(stream)
    if (state.pending + state.ackPending > 0) return yield* Effect.fail(state)
    return state
  }).pipe(
    Effect.retry({
      schedule: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 200 })),
      while: (e) => !("_tag" in e)
    }),
    Effect.catch((e) => "_tag" in e ? Effect.fail(e) : Effect.succeed(e))
  )

/** Resolves once `n` calls of `hit` were made. */
const countdown = (n: number) =>
  Effect.map(Deferred.make<void>(), (done) => {
    let left = n
    return {
      hit: Effect.suspend(() => --left <= 0 ? Deferred.succeed(done, undefined) : Effect.void),
      await: Deferred.await(done)
    }
  })

describe("Processor", () => {
  layer(Env, { excludeTestServices: true })("on a real server", (it) => {
    it.effect(
      "10,000 messages, concurrency 16: all processed and acked, in-flight never above 16",
      () =>
        Effect.gen(function*() {
          const consumer = yield* setup("proc-bulk")
          yield* publishOrders("proc-bulk.o", Array.from({ length: 10_000 }, (_, i) => i))
          const seen = new Set<number>()
          let running = 0
          let maxRunning = 0
          const done = yield* countdown(10_000)
          const scope = yield* Scope.make()
          yield* Processor.make({
            consumer,
            codec: Order,
            concurrency: 16,
            handler: (order: Order) =>
              Effect.gen(function*() {
                running++
                maxRunning = Math.max(maxRunning, running)
                yield* Effect.yieldNow
                seen.add(order.id)
                running--
                yield* done.hit
              })
          }).pipe(Scope.provide(scope))
          yield* done.await
          yield* Scope.close(scope, Exit.void)
          assert.strictEqual(seen.size, 10_000)
          assert.isAtMost(maxRunning, 16)
          assert.isAbove(maxRunning, 1)
          const state = yield* consumerState("proc-bulk")
          assert.deepStrictEqual([state.pending, state.ackPending], [0, 0])
        }),
      60_000
    )

    it.effect("onOutcome tells what became of each message: acked, retried then acked, not decoded", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-outcome")
        yield* publishOrders("proc-outcome.o", [1, 2])
        const js = yield* JetStream.JetStream
        yield* js.publish("proc-outcome.o", encoder.encode("not json"))
        const outcomes: Array<Processor.MessageOutcome> = []
        const done = yield* countdown(4)
        yield* Processor.make({
          consumer,
          codec: Order,
          retry: Schedule.spaced("50 millis"),
          handler: (order, envelope) =>
            order.id === 2 && envelope.deliveryCount === 1 ? Effect.fail("not yet") : Effect.void,
          onOutcome: (outcome) => {
            outcomes.push(outcome)
            Effect.runFork(done.hit)
          }
        })
        yield* done.await
        const summary = outcomes.map((o) => `${o.streamSequence}:${o.deliveryCount}:${o.outcome}`).sort()
        assert.deepStrictEqual(summary, ["1:1:acked", "2:1:retried", "2:2:acked", "3:1:decode_failed"])
        const retried = outcomes.find((o) => o.outcome === "retried")
        assert.include(retried?.detail ?? "", "not yet")
        assert.strictEqual(retried?.subject, "proc-outcome.o")
      }))

    it.effect("a failing handler is redelivered with the schedule's delays, then succeeds", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-retry")
        yield* publishOrders("proc-retry.o", [1, 2, 3])
        const deliveries = new Map<number, Array<{ count: number; at: number }>>()
        const done = yield* countdown(3)
        yield* Processor.make({
          consumer,
          codec: Order,
          retry: Schedule.exponential("200 millis"),
          handler: (order, envelope) =>
            Effect.gen(function*() {
              const log = deliveries.get(order.id) ?? []
              log.push({ count: envelope.deliveryCount, at: Date.now() })
              deliveries.set(order.id, log)
              if (order.id !== 2 && envelope.deliveryCount <= 2) return yield* Effect.fail(`boom ${order.id}`)
              yield* done.hit
            })
        })
        yield* done.await
        assert.deepStrictEqual(deliveries.get(2)?.map((d) => d.count), [1])
        for (const id of [1, 3]) {
          const log = deliveries.get(id) ?? []
          assert.deepStrictEqual(log.map((d) => d.count), [1, 2, 3], `order ${id}`)
          // delivery n + 1 comes at least the schedule's n-th delay after delivery n
          assert.isAtLeast((log[1]?.at ?? 0) - (log[0]?.at ?? 0), 190)
          assert.isAtLeast((log[2]?.at ?? 0) - (log[1]?.at ?? 0), 390)
        }
      }))

    it.effect("poison and always-failing messages are dead-lettered once with reason headers, never redelivered", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream({ name: "proc-dlq", subjects: ["proc-dlq.>"] })
        const consumer = yield* setup("proc-poison", { ackWait: "1 second" })
        const js = yield* JetStream.JetStream
        // valid JSON of the wrong shape: the Schema's message spans several lines
        yield* js.publish("proc-poison.o", encoder.encode(JSON.stringify({ id: "x" })), {
          headers: { "x-origin": "test" }
        })
        yield* publishOrders("proc-poison.o", [7, 8])
        const calls = new Map<number, number>()
        const good = yield* countdown(1)
        const outcomes = (outcome: string) =>
          Metric.value(
            Metric.withAttributes(Processor.messages, {
              outcome,
              stream: "proc-poison",
              consumer: "proc-poison-worker"
            })
          ).pipe(Effect.map((state) => state.count))
        yield* Processor.make({
          consumer,
          codec: Order,
          retry: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 2 })),
          deadLetter: { subject: "proc-dlq.orders" },
          handler: (order) =>
            Effect.gen(function*() {
              calls.set(order.id, (calls.get(order.id) ?? 0) + 1)
              if (order.id === 7) return yield* Effect.fail(new Error("always fails"))
              yield* good.hit
            })
        })
        yield* good.await
        // two dead letters: the poison at once, order 7 after 1 + 2 retries
        const dlq = yield* Effect.gen(function*() {
          const info = yield* jsm.streamInfo("proc-dlq")
          if (info.state.messages < 2) return yield* Effect.fail("not yet")
          return info
        }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 100 }))))
        assert.strictEqual(dlq.state.messages, 2)
        const first = yield* jsm.getMessage("proc-dlq", { seq: 1 })
        const second = yield* jsm.getMessage("proc-dlq", { seq: 2 })
        const byReason = new Map(
          [first, second].map((m) => {
            const msg = m._tag === "Some" ? m.value : undefined
            return [msg?.headers?.get(Processor.DeadLetterHeaders.reason) ?? "", msg] as const
          })
        )
        const poison = byReason.get("decode")
        assert.strictEqual(decoder.decode(poison?.data), JSON.stringify({ id: "x" }))
        assert.include(poison?.headers?.get(Processor.DeadLetterHeaders.error) ?? "", "id")
        assert.strictEqual(poison?.headers?.get("x-origin"), "test")
        assert.strictEqual(poison?.headers?.get(Processor.DeadLetterHeaders.subject), "proc-poison.o")
        assert.strictEqual(poison?.headers?.get(Processor.DeadLetterHeaders.stream), "proc-poison")
        assert.strictEqual(poison?.headers?.get(Processor.DeadLetterHeaders.sequence), "1")
        assert.strictEqual(poison?.headers?.get(Processor.DeadLetterHeaders.deliveryCount), "1")
        const exhausted = byReason.get("retries_exhausted")
        assert.strictEqual(decoder.decode(exhausted?.data), JSON.stringify({ id: 7 }))
        assert.include(exhausted?.headers?.get(Processor.DeadLetterHeaders.error) ?? "", "always fails")
        assert.strictEqual(exhausted?.headers?.get(Processor.DeadLetterHeaders.deliveryCount), "3")
        assert.strictEqual(calls.get(7), 3)
        // nothing comes back after the ack wait has passed twice
        yield* Effect.sleep("2200 millis")
        assert.strictEqual(calls.get(7), 3)
        assert.strictEqual(calls.get(8), 1)
        const state = yield* settled("proc-poison")
        assert.deepStrictEqual([state.pending, state.ackPending], [0, 0])
        assert.deepStrictEqual(
          [yield* outcomes("decode_failed"), yield* outcomes("dead_lettered"), yield* outcomes("acked")],
          [1, 1, 1]
        )
        assert.strictEqual(yield* outcomes("retried"), 2)
      }))

    it.effect("decide: a failure the policy terms is terminated, not retried or dead-lettered", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-term", { ackWait: "500 millis" })
        yield* publishOrders("proc-term.o", [1])
        let calls = 0
        const first = yield* countdown(1)
        yield* Processor.make({
          consumer,
          codec: Order,
          decide: (failure) => failure._tag === "Failed" && failure.error === "fatal" ? "term" : "retry",
          handler: () => Effect.andThen(Effect.sync(() => calls++), Effect.andThen(first.hit, Effect.fail("fatal")))
        })
        yield* first.await
        yield* Effect.sleep("1200 millis")
        assert.strictEqual(calls, 1)
        const state = yield* settled("proc-term")
        assert.deepStrictEqual([state.pending, state.ackPending], [0, 0])
      }))

    it.effect("a handler taking 3x the ack wait completes without being redelivered", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-slow", { ackWait: "600 millis" })
        yield* publishOrders("proc-slow.o", [1])
        const counts: Array<number> = []
        const done = yield* countdown(1)
        yield* Processor.make({
          consumer,
          codec: Order,
          handler: (_order, envelope) =>
            Effect.sync(() => counts.push(envelope.deliveryCount)).pipe(
              Effect.andThen(Effect.sleep("1800 millis")),
              Effect.andThen(done.hit)
            )
        })
        yield* done.await
        yield* Effect.sleep("700 millis")
        assert.deepStrictEqual(counts, [1])
        const state = yield* settled("proc-slow")
        assert.deepStrictEqual([state.ackPending, state.redelivered], [0, 0])
      }))

    it.effect("handlerTimeout turns a stuck handler into a retried failure", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-timeout")
        yield* publishOrders("proc-timeout.o", [1])
        const counts: Array<number> = []
        const done = yield* countdown(1)
        yield* Processor.make({
          consumer,
          codec: Order,
          handlerTimeout: "200 millis",
          doubleAck: true,
          retry: Schedule.spaced("50 millis"),
          handler: (_order, envelope) =>
            Effect.sync(() => counts.push(envelope.deliveryCount)).pipe(
              Effect.andThen(envelope.deliveryCount === 1 ? Effect.never : done.hit)
            )
        })
        yield* done.await
        assert.deepStrictEqual(counts, [1, 2])
      }))

    for (const [concurrency, total] of [[8, 5_000], [1, 1_000]] as const) {
      it.effect(
        `concurrency ${concurrency}: shutdown mid-way through ${total} slow messages loses nothing; a restarted processor finishes`,
        () =>
          Effect.gen(function*() {
            const consumer = yield* setup(`proc-stop${concurrency}`, { ackWait: "2 seconds" })
            yield* publishOrders(`proc-stop${concurrency}.o`, Array.from({ length: total }, (_, i) => i))
            const completedFirstRun = new Set<number>()
            const processedAgain: Array<number> = []
            const all = new Set<number>()
            const allDone = yield* Deferred.make<void>()
            let stopping = false
            const some = yield* countdown(total / 10)
            const run = (first: boolean) =>
              Processor.make({
                consumer,
                codec: Order,
                concurrency,
                gracePeriod: "5 seconds",
                handler: (order: Order) =>
                  Effect.gen(function*() {
                    if (!first && completedFirstRun.has(order.id)) processedAgain.push(order.id)
                    yield* Effect.sleep("2 millis")
                    all.add(order.id)
                    if (all.size === total) yield* Deferred.succeed(allDone, undefined)
                    if (first) {
                      completedFirstRun.add(order.id)
                      if (!stopping) yield* some.hit
                    }
                  })
              })
            const scope1 = yield* Scope.make()
            yield* run(true).pipe(Scope.provide(scope1))
            yield* some.await
            stopping = true
            yield* Scope.close(scope1, Exit.void)
            assert.isBelow(completedFirstRun.size, total)

            // a new processor on the same consumer finishes the rest
            yield* run(false)
            yield* Deferred.await(allDone)
            assert.strictEqual(all.size, total)
            // settled: the first run's prefetched, never-handled messages came
            // back after the ack wait and were handled too
            const final = yield* settled(`proc-stop${concurrency}`)
            assert.deepStrictEqual([final.pending, final.ackPending], [0, 0])
            // nothing acked before the shutdown was handled again
            assert.deepStrictEqual(processedAgain, [])
          }),
        60_000
      )
    }

    it.effect("a handler still running after the grace period is interrupted and nak'ed, then redelivered", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-grace", { ackWait: "30 seconds" })
        yield* publishOrders("proc-grace.o", [1])
        const started = yield* countdown(1)
        const scope = yield* Scope.make()
        yield* Processor.make({
          consumer,
          codec: Order,
          gracePeriod: "200 millis",
          handler: () => Effect.andThen(started.hit, Effect.never)
        }).pipe(Scope.provide(scope))
        yield* started.await
        yield* Scope.close(scope, Exit.void)
        // nak'ed without delay: a new processor gets it long before the 30 s ack wait
        // (nats-server 2.9 does not count a delivery to a pull that has gone away)
        const again = yield* Deferred.make<number>()
        yield* Processor.make({
          consumer,
          codec: Order,
          handler: (_order, envelope) => Deferred.succeed(again, envelope.streamSequence)
        })
        const seq = yield* Deferred.await(again).pipe(Effect.timeout("5 seconds"))
        assert.strictEqual(seq, 1)
        const interrupted = yield* Metric.value(
          Metric.withAttributes(Processor.messages, {
            outcome: "interrupted",
            stream: "proc-grace",
            consumer: "proc-grace-worker"
          })
        )
        assert.strictEqual(interrupted.count, 1)
      }))

    it.effect("max_deliver reached: dead-lettered with reason max_deliver; without a dead-letter subject: termed", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream({ name: "proc-dlq2", subjects: ["proc-dlq2.>"] })
        const consumer = yield* setup("proc-maxdel", { maxDeliver: 2 })
        yield* publishOrders("proc-maxdel.o", [1])
        yield* Processor.make({
          consumer,
          codec: Order,
          retry: Schedule.spaced("20 millis"),
          deadLetter: { subject: "proc-dlq2.x" },
          handler: () => Effect.fail("nope")
        })
        const info = yield* jsm.streamInfo("proc-dlq2").pipe(
          Effect.repeat({ until: (i) => i.state.messages >= 1, schedule: Schedule.spaced("50 millis") }),
          Effect.timeout("10 seconds")
        )
        assert.strictEqual(info.state.messages, 1)
        const dead = yield* jsm.getMessage("proc-dlq2", { seq: 1 })
        assert.strictEqual(
          dead._tag === "Some" ? dead.value.headers?.get(Processor.DeadLetterHeaders.reason) : "",
          "max_deliver"
        )

        const terms = yield* setup("proc-noDlq")
        yield* publishOrders("proc-noDlq.o", [1])
        let calls = 0
        yield* Processor.make({
          consumer: terms,
          codec: Order,
          decide: () => "deadLetter",
          handler: () => Effect.andThen(Effect.sync(() => calls++), Effect.fail("bad"))
        })
        const state = yield* settled("proc-noDlq")
        assert.deepStrictEqual([state.pending, state.ackPending, calls], [0, 0, 1])
      }))

    it.effect("refuses a dead-letter subject the processed stream captures, or one no stream captures", () =>
      Effect.gen(function*() {
        const consumer = yield* setup("proc-loop")
        for (const subject of ["proc-loop.dead", "nowhere.dead"]) {
          const error = yield* Effect.flip(Processor.make({
            consumer,
            codec: Order,
            deadLetter: { subject },
            handler: () => Effect.void
          }))
          assert.strictEqual(error.reason._tag, "InvalidArgument", subject)
        }
      }))

    it.effect("a dead-letter check that cannot ask the server fails with its own reason, not as 'no stream captures'", () =>
      Effect.gen(function*() {
        // a user who may not list streams by subject ($JS.API.STREAM.NAMES): the lookup gets no answer
        const server = yield* NatsServer.make({
          config: "authorization { users: [ { user: u, password: p, permissions: { publish: { allow: [\">\"], " +
            "deny: [\"$JS.API.STREAM.NAMES\"] } } } ] }"
        })
        const env = Layer.mergeAll(
          JetStream.JetStream.layer,
          JetStreamManager.JetStreamManager.layerWith({ timeout: "500 millis" })
        ).pipe(
          Layer.provideMerge(
            NatsClient.NatsClient.layer({
              servers: server.url,
              auth: Auth.userPassword("u", Redacted.make("p")),
              logEvents: false
            })
          )
        )
        const error = yield* Effect.scoped(Effect.gen(function*() {
          const consumer = yield* setup("proc-denied")
          return yield* Effect.flip(Processor.make({
            consumer,
            codec: Order,
            deadLetter: { subject: "proc-denied-dlq.x" },
            handler: () => Effect.void
          }))
        })).pipe(Effect.provide(env))
        assert.include(["Timeout", "PermissionViolation"], error.reason._tag, error.message)
        assert.notInclude(error.message, "no stream captures")
      }))

    it.effect("term from a processor carries its reason when the server records reasons", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        // A client that believes its server is 2.11 (which records term reasons): the processor's
        // term then carries the reason. nats-server 2.9 ignores a +TERM with a reason, so the message
        // comes back: that is how this test sees the reason was sent (without it, it never comes back).
        const deliveries: Array<number> = []
        const twice = yield* countdown(2)
        yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* NatsClient.NatsClient
          const info = client.connection.info as { version: string } | undefined
          if (info !== undefined) info.version = "2.11.0"
          const consumer = yield* setup("proc-reason", { ackWait: "1 second" })
          yield* publishOrders("proc-reason.o", [1])
          yield* Processor.make({
            consumer,
            codec: Order,
            decide: () => "term",
            handler: (_order, envelope) =>
              Effect.sync(() => deliveries.push(envelope.deliveryCount)).pipe(
                Effect.andThen(twice.hit),
                Effect.andThen(Effect.fail("no"))
              )
          })
          yield* twice.await
        })).pipe(
          Effect.provide(
            Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer).pipe(
              Layer.provideMerge(NatsClient.NatsClient.layer({ servers: server.url, logEvents: false }))
            )
          )
        )
        assert.deepStrictEqual(deliveries.slice(0, 2), [1, 2])
      }), 30_000)

    it.effect(
      "slow handlers: messages waiting in the prefetch buffer longer than the ack wait are kept alive, none redelivered",
      () =>
        Effect.gen(function*() {
          const consumer = yield* setup("proc-slow2", { ackWait: "1 second" })
          yield* publishOrders("proc-slow2.o", [1, 2, 3, 4, 5, 6])
          const counts: Array<string> = []
          const done = yield* countdown(6)
          // default prefetch: all six arrive at once; the last waits about 1.5 s for its handler
          yield* Processor.make({
            consumer,
            codec: Order,
            handler: (order, envelope) =>
              Effect.sync(() => counts.push(`${order.id}/${envelope.deliveryCount}`)).pipe(
                Effect.andThen(Effect.sleep("300 millis")),
                Effect.andThen(done.hit)
              )
          })
          yield* done.await
          const state = yield* settled("proc-slow2")
          // a redelivered copy would have been handled before the consumer settled
          assert.deepStrictEqual(counts, ["1/1", "2/1", "3/1", "4/1", "5/1", "6/1"])
          assert.strictEqual(state.redelivered, 0)
        }),
      30_000
    )

    it.effect("keeps processing across a server restart", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const consumer = yield* setup("proc-restart")
        const seen = new Set<number>()
        const firstBatch = yield* countdown(50)
        const secondBatch = yield* countdown(50)
        yield* Processor.make({
          consumer,
          codec: Order,
          handler: (order: Order) =>
            Effect.suspend(() => {
              if (seen.has(order.id)) return Effect.void
              seen.add(order.id)
              return order.id < 50 ? firstBatch.hit : secondBatch.hit
            })
        })
        yield* publishOrders("proc-restart.o", Array.from({ length: 50 }, (_, i) => i))
        yield* firstBatch.await
        yield* server.restart()
        yield* publishOrders("proc-restart.o", Array.from({ length: 50 }, (_, i) => 50 + i)).pipe(
          Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 50 })))
        )
        yield* secondBatch.await
        assert.strictEqual(seen.size, 100)
      }), 60_000)
  })
})
