import { assert, describe, layer } from "@effect/vitest"
import type { JetStreamManager, JsMsg } from "@nats-io/jetstream"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import {
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Ref,
  Schedule,
  Schema,
  Scope,
  Stream
} from "effect"
import {
  Codec,
  JetStream,
  JetStreamManager as Jsm,
  LocalNats,
  NatsClient,
  NatsServer,
  Processor
} from "../../src/index.ts"
import * as ConsumerConfig from "../../src/schemas/ConsumerConfig.ts"
import * as Consumer from "../../src/services/Consumer.ts"

const encoder = new TextEncoder()

/** A client on an embedded server, with the JetStream manager consumers are made through. */
const Env = Jsm.JetStreamManager.layer.pipe(Layer.provideMerge(LocalNats.layer()))

const manager = Effect.gen(function*() {
  const client = yield* NatsClient.NatsClient
  return yield* Effect.promise(() => jetstreamManager(client.connection))
})

/** A fresh stream `name` capturing `name.>`. */
const makeStream = (name: string) =>
  Effect.gen(function*() {
    const jsm = yield* manager
    yield* Effect.promise(() => jsm.streams.add({ name, subjects: [`${name}.>`] }))
    return jsm
  })

/** Publishes `count` messages to `subject` (pipelined, awaited in windows), payload `i` as text. */
const publishMany = (subject: string, count: number, from = 0) =>
  Effect.gen(function*() {
    const client = yield* NatsClient.NatsClient
    const js = jetstream(client.connection)
    for (let start = 0; start < count; start += 500) {
      const end = Math.min(count, start + 500)
      // a msgId per message: a retried batch (after a restart) stores nothing twice
      yield* Effect.tryPromise(() =>
        Promise.all(
          Array.from(
            { length: end - start },
            (_, i) =>
              js.publish(subject, encoder.encode(String(from + start + i)), {
                msgID: `${subject}:${from + start + i}`
              })
          )
        )
      )
    }
  })

const publishRaw = (subject: string, payload: string) =>
  Effect.gen(function*() {
    const client = yield* NatsClient.NatsClient
    yield* Effect.promise(() => jetstream(client.connection).publish(subject, encoder.encode(payload)))
  })

/**
 * 2,000 messages, a consume Stream whose first element never finishes (the
 * consumer takes `maxMessages: 20, bufferSize: 10`): the consumer's info once
 * nats.js had every chance to over-pull.
 */
const stalled = (name: string, config: ConsumerConfig.ConsumerConfig) =>
  Effect.gen(function*() {
    const jsm = yield* makeStream(name)
    yield* publishMany(`${name}.a`, 2_000)
    const consumer = yield* Consumer.make({ stream: name, config })
    const got = yield* Deferred.make<void>()
    const fiber = yield* consumer.consume({ maxMessages: 20, bufferSize: 10 }).pipe(
      Stream.runForEach(() => Effect.andThen(Deferred.succeed(got, undefined), Effect.never)),
      Effect.forkChild
    )
    yield* Deferred.await(got)
    // nothing to await: the claim is that nothing more comes
    yield* Effect.sleep("500 millis")
    const ci = yield* consumerInfo(jsm, name, config.durable ?? "")
    yield* Fiber.interrupt(fiber)
    return ci
  })

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

const Payload = Schema.Struct({ n: Schema.Number })

describe("Consumer", () => {
  layer(Env, { excludeTestServices: true })("on a real server", (it) => {
    it.effect("consume with explicit ack: 10,000 messages, each exactly once", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("bulk")
        yield* publishMany("bulk.x", 10_000)
        const consumer = yield* Consumer.make({ stream: "bulk", config: { durable: "bulk-worker" } })
        const seen = new Set<number>()
        let duplicates = 0
        yield* consumer.consume({ maxMessages: 500 }).pipe(
          Stream.take(10_000),
          Stream.runForEach((m) => {
            if (seen.has(m.streamSequence)) duplicates++
            seen.add(m.streamSequence)
            return m.ack
          })
        )
        assert.strictEqual(seen.size, 10_000)
        assert.strictEqual(duplicates, 0)
        const ci = yield* settledConsumerInfo(jsm, "bulk", "bulk-worker")
        assert.strictEqual(ci.num_pending, 0)
        assert.strictEqual(ci.num_ack_pending, 0)
        assert.strictEqual(ci.delivered.consumer_seq, 10_000)
      }), 60_000)

    it.effect("nak redelivers with a rising deliveryCount; nak(delay) waits the delay", () =>
      Effect.gen(function*() {
        yield* makeStream("naks")
        yield* publishRaw("naks.a", "a")
        const consumer = yield* Consumer.make({ stream: "naks", config: { durable: "naker" } })
        const counts: Array<number> = []
        const times: Array<number> = []
        yield* consumer.consume().pipe(
          Stream.take(4),
          Stream.runForEach((m) =>
            Effect.gen(function*() {
              counts.push(m.deliveryCount)
              times.push(Date.now())
              if (m.deliveryCount === 1) yield* m.nak()
              else if (m.deliveryCount === 2) yield* m.nak()
              else if (m.deliveryCount === 3) yield* m.nak("1500 millis")
              else yield* m.ack
            })
          )
        )
        assert.deepStrictEqual(counts, [1, 2, 3, 4])
        const [, , third, fourth] = times
        assert.isDefined(third)
        assert.isDefined(fourth)
        if (third !== undefined && fourth !== undefined) {
          assert.isAtLeast(fourth - third, 1400, "redelivered before the nak delay")
        }
      }))

    it.effect("term: the message is never redelivered", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("terms")
        yield* publishRaw("terms.a", "poison")
        yield* publishRaw("terms.a", "fine")
        const consumer = yield* Consumer.make({
          stream: "terms",
          config: { durable: "termer", ackWait: Duration.millis(500) }
        })
        const received: Array<string> = []
        // twice the ack wait, and more: a redelivery would show up
        yield* consumer.consume().pipe(
          Stream.interruptWhen(Effect.sleep("1500 millis")),
          Stream.runForEach((m) => {
            received.push(`${text(m.value)}#${m.deliveryCount}`)
            return text(m.value) === "poison" ? m.term("bad input") : m.ack
          })
        )
        assert.deepStrictEqual(received, ["poison#1", "fine#1"])
        const ci = yield* consumerInfo(jsm, "terms", "termer")
        assert.strictEqual(ci.num_ack_pending, 0)
        assert.strictEqual(ci.num_redelivered, 0)
      }))

    it.effect("fetch honours the batch size and the max wait", () =>
      Effect.gen(function*() {
        yield* makeStream("fetches")
        yield* publishMany("fetches.a", 3)
        const consumer = yield* Consumer.make({ stream: "fetches", config: { durable: "fetcher" } })
        const t0 = Date.now()
        const few = yield* Stream.runCollect(consumer.fetch({ batch: 10, maxWait: "1 second" }))
        const waited = Date.now() - t0
        assert.strictEqual(few.length, 3)
        assert.isAtLeast(waited, 900)
        assert.isBelow(waited, 3000)
        yield* Effect.forEach(few, (m) => m.ack, { discard: true })

        yield* publishMany("fetches.a", 50)
        const t1 = Date.now()
        const full = yield* Stream.runCollect(consumer.fetch({ batch: 10, maxWait: "5 seconds" }))
        assert.strictEqual(full.length, 10)
        assert.isBelow(Date.now() - t1, 1000, "a full batch returns at once")
        assert.deepStrictEqual(full.map((m) => m.streamSequence), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
      }))

    it.effect("next on an empty consumer is None after maxWait; then Some", () =>
      Effect.gen(function*() {
        yield* makeStream("nexts")
        const consumer = yield* Consumer.make({ stream: "nexts", config: { durable: "nexter" } })
        const t0 = Date.now()
        const none = yield* consumer.next({ maxWait: "1 second" })
        assert.isTrue(Option.isNone(none))
        assert.isAtLeast(Date.now() - t0, 900)
        yield* publishRaw("nexts.a", "hello")
        const some = yield* consumer.next({ maxWait: "2 seconds", codec: Codec.string })
        assert.isTrue(Option.isSome(some))
        if (Option.isSome(some)) {
          assert.strictEqual(some.value.value, "hello")
          assert.strictEqual(some.value.deliveryCount, 1)
          assert.strictEqual(some.value.stream, "nexts")
          assert.strictEqual(some.value.consumer, "nexter")
          yield* some.value.ack
        }
      }))

    it.effect("an ordered consumer replays the stream in order from a start sequence", () =>
      Effect.gen(function*() {
        yield* makeStream("replay")
        yield* publishMany("replay.a", 20)
        const consumer = yield* Consumer.make({
          stream: "replay",
          ordered: { filterSubject: "replay.a", deliver: ConsumerConfig.deliver.startSequence(5) }
        })
        const values = yield* consumer.consume({ codec: Codec.string }).pipe(
          Stream.take(16),
          Stream.map((m) => [m.streamSequence, m.value] as const),
          Stream.runCollect
        )
        assert.deepStrictEqual(values, Array.from({ length: 16 }, (_, i) => [i + 5, String(i + 4)] as const))
        // a second consume replays again from the start sequence
        const again = yield* consumer.consume().pipe(
          Stream.take(2),
          Stream.map((m) => m.streamSequence),
          Stream.runCollect
        )
        assert.deepStrictEqual(again, [5, 6])
      }))

    it.effect("an ordered handle makes no consumer on the server until it is used, and leaves none", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("lazyorder")
        yield* publishMany("lazyorder.a", 5)
        const consumers = Effect.promise(() => jsm.consumers.list("lazyorder").next()).pipe(
          Effect.map((list) => list.length)
        )
        const scope = yield* Scope.make()
        const consumer = yield* Consumer.make({ stream: "lazyorder", ordered: {} }).pipe(Scope.provide(scope))
        assert.strictEqual(yield* consumers, 0)
        // a Processor refuses it before asking the server anything
        const refused = yield* Effect.flip(
          Processor.make({ consumer, codec: Codec.string, handler: () => Effect.void }).pipe(
            Effect.provide(JetStream.JetStream.layer),
            Scope.provide(scope)
          )
        )
        assert.strictEqual(refused.reason._tag, "InvalidArgument")
        assert.strictEqual(yield* consumers, 0)
        assert.strictEqual(yield* consumer.name, (yield* consumer.info).name)
        assert.strictEqual(yield* consumers, 1)
        // a consume replays with a consumer of its own, deleted when it ends
        const seen = yield* consumer.consume({ codec: Codec.string }).pipe(
          Stream.take(5),
          Stream.tap(() => Effect.flatMap(consumers, (n) => Effect.sync(() => assert.strictEqual(n, 2)))),
          Stream.map((m) => m.value),
          Stream.runCollect
        )
        assert.deepStrictEqual(seen, ["0", "1", "2", "3", "4"])
        const first = yield* consumer.next({ maxWait: "2 seconds", codec: Codec.string })
        assert.strictEqual(Option.getOrUndefined(first)?.value, "0")
        yield* Scope.close(scope, Exit.void)
        // a handle used for the first time after its scope closed: refused, nothing made
        const unusedScope = yield* Scope.make()
        const unused = yield* Consumer.make({ stream: "lazyorder", ordered: {} }).pipe(Scope.provide(unusedScope))
        yield* Scope.close(unusedScope, Exit.void)
        assert.strictEqual((yield* Effect.flip(unused.info)).reason._tag, "InvalidArgument")
        yield* Effect.promise(async () => {
          for (let i = 0; i < 100 && (await jsm.consumers.list("lazyorder").next()).length > 0; i++) {
            await new Promise((resolve) => setTimeout(resolve, 20))
          }
        })
        assert.strictEqual(yield* consumers, 0)
      }))

    it.effect("an ordered handle on a stream that does not exist fails at once with StreamNotFound", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Consumer.make({ stream: "nosuchstream", ordered: {} }))
        assert.strictEqual(error.reason._tag, "StreamNotFound")
      }))

    it.effect("ackAck waits for the server's confirmation; a second one fails", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("ackacks")
        yield* publishRaw("ackacks.a", "x")
        const consumer = yield* Consumer.make({ stream: "ackacks", config: { durable: "acker" } })
        const m = yield* consumer.next({ maxWait: "2 seconds" })
        assert.isTrue(Option.isSome(m))
        if (Option.isNone(m)) return
        yield* m.value.ackAck()
        // confirmed: no flush needed for the server to know
        const ci = yield* Effect.promise(() => jsm.consumers.info("ackacks", "acker"))
        assert.strictEqual(ci.num_ack_pending, 0)
        assert.strictEqual(ci.ack_floor.stream_seq, 1)
        const again = yield* Effect.flip(m.value.ackAck())
        assert.strictEqual(again.reason._tag, "InvalidArgument")
      }))

    it.effect("decode policy fail: the stream fails with DecodeError after the good messages", () =>
      Effect.gen(function*() {
        yield* makeStream("dfail")
        yield* publishRaw("dfail.a", JSON.stringify({ n: 1 }))
        yield* publishRaw("dfail.a", "not json")
        yield* publishRaw("dfail.a", JSON.stringify({ n: 3 }))
        const consumer = yield* Consumer.make({ stream: "dfail", config: { durable: "d" } })
        const good: Array<number> = []
        const error = yield* consumer.consume({ codec: Payload, onDecodeError: "fail" }).pipe(
          Stream.runForEach((m) => {
            good.push(m.value.n)
            return m.ack
          }),
          Effect.flip
        )
        assert.deepStrictEqual(good, [1])
        assert.strictEqual(error._tag, "DecodeError")
        if (error._tag === "DecodeError") assert.strictEqual(error.subject, "dfail.a")
      }))

    it.effect("decode policy logAndSkip: goes on, and the bad message is terminated (never redelivered)", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("dskip")
        yield* publishRaw("dskip.a", JSON.stringify({ n: 1 }))
        yield* publishRaw("dskip.a", "{\"n\":\"two\"}")
        yield* publishRaw("dskip.a", JSON.stringify({ n: 3 }))
        const consumer = yield* Consumer.make({
          stream: "dskip",
          config: { durable: "d", ackWait: Duration.millis(400) }
        })
        const good: Array<number> = []
        yield* consumer.consume({ codec: Payload, onDecodeError: "logAndSkip" }).pipe(
          Stream.interruptWhen(Effect.sleep("1200 millis")),
          Stream.runForEach((m) => {
            good.push(m.value.n)
            return m.ack
          })
        )
        assert.deepStrictEqual(good, [1, 3])
        const ci = yield* consumerInfo(jsm, "dskip", "d")
        assert.strictEqual(ci.num_ack_pending, 0)
        assert.strictEqual(ci.num_redelivered, 0)
        assert.strictEqual(ci.num_pending, 0)
      }))

    it.effect("decode policy handler: receives the error and the raw message", () =>
      Effect.gen(function*() {
        yield* makeStream("dhandler")
        yield* publishRaw("dhandler.a", "oops")
        yield* publishRaw("dhandler.a", JSON.stringify({ n: 2 }))
        const consumer = yield* Consumer.make({ stream: "dhandler", config: { durable: "d" } })
        const bad = yield* Ref.make<Array<string>>([])
        const good = yield* consumer.consume({
          codec: Payload,
          onDecodeError: (error, msg: JsMsg) =>
            Ref.update(bad, (all) => [...all, `${msg.seq}:${text(msg.data)}:${error._tag}`]).pipe(
              Effect.andThen(Effect.sync(() => msg.term()))
            )
        }).pipe(Stream.take(1), Stream.map((m) => m.value.n), Stream.runCollect)
        assert.deepStrictEqual(good, [2])
        assert.deepStrictEqual(yield* Ref.get(bad), ["1:oops:DecodeError"])
      }))

    it.effect("backpressure with explicit acks: a stalled Stream holds at most max_ack_pending messages", () =>
      Effect.gen(function*() {
        const ci = yield* stalled("slow", { durable: "slow", maxAckPending: 50 })
        // the server delivers no more than max_ack_pending un-acked messages
        assert.isAtMost(ci.delivered.consumer_seq, 50)
        assert.isAtLeast(ci.num_pending, 1_950)
      }))

    it.effect("backpressure without acks: nats.js prefetch + bufferSize bound what is delivered", () =>
      Effect.gen(function*() {
        const ci = yield* stalled("slow2", { durable: "slow2", ackPolicy: "none" })
        // one message in the handler, 10 in the buffer, a pull of 20 in nats.js, one follow-up pull
        assert.isAtMost(ci.delivered.consumer_seq, 60)
        assert.isAtLeast(ci.num_pending, 1_900)
      }))

    it.effect("onReceive sees each message before the Stream hands it out, in order (callback and iterator paths)", () =>
      Effect.gen(function*() {
        yield* makeStream("recv")
        yield* publishMany("recv.a", 300)
        for (const ackPolicy of ["explicit", "none"] as const) {
          const consumer = yield* Consumer.make({ stream: "recv", config: { durable: `recv-${ackPolicy}`, ackPolicy } })
          const received: Array<number> = []
          const handedOut: Array<number> = []
          let seenFirst = 0
          yield* consumer.consume({ maxMessages: 50, onReceive: (msg) => received.push(msg.seq) }).pipe(
            Stream.take(300),
            Stream.runForEach((m) =>
              Effect.suspend(() => {
                if (received.includes(m.streamSequence)) seenFirst++
                handedOut.push(m.streamSequence)
                return ackPolicy === "explicit" ? m.ack : Effect.void
              })
            )
          )
          assert.strictEqual(seenFirst, 300, ackPolicy)
          assert.deepStrictEqual(received.slice(0, 300), handedOut, ackPolicy)
        }
      }))

    it.effect("push consumer: consume delivers, acks are honoured; fetch is refused", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("pushed")
        yield* publishMany("pushed.a", 20)
        const consumer = yield* Consumer.make({
          stream: "pushed",
          config: { durable: "pusher", maxAckPending: 50 },
          push: {}
        })
        assert.isTrue(consumer.push)
        const seqs = yield* consumer.consume({ codec: Codec.string }).pipe(
          Stream.take(20),
          Stream.mapEffect((m) => Effect.as(m.ack, m.streamSequence)),
          Stream.runCollect
        )
        assert.deepStrictEqual(seqs, Array.from({ length: 20 }, (_, i) => i + 1))
        const ci = yield* consumerInfo(jsm, "pushed", "pusher")
        assert.strictEqual(ci.num_ack_pending, 0)
        assert.isString(ci.config.deliver_subject)
        const refused = yield* Effect.flip(Stream.runCollect(consumer.fetch({ batch: 1, maxWait: "1 second" })))
        assert.strictEqual(refused.reason._tag, "InvalidArgument")
        // bind to it by name
        const bound = yield* Consumer.make({ stream: "pushed", durable: "pusher", push: true })
        assert.isTrue(bound.push)
      }))

    it.effect("closing the handle's scope stops consuming before its connection drains; the stream ends cleanly", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        yield* makeStream("shutdown")
        yield* publishMany("shutdown.a", 500)
        const scope = yield* Scope.make()
        const client = yield* NatsClient.make({ servers: server.urls, logEvents: false }).pipe(Scope.provide(scope))
        // the consumer's connection is this client's (its JetStream manager is made on it too)
        const jsm = yield* Jsm.make().pipe(Effect.provideService(NatsClient.NatsClient, client))
        const consumer = yield* Consumer.make({ stream: "shutdown", config: { durable: "closer" } }).pipe(
          Effect.provideService(NatsClient.NatsClient, client),
          Effect.provideService(Jsm.JetStreamManager, jsm),
          Scope.provide(scope)
        )
        const halfway = yield* Deferred.make<void>()
        let count = 0
        const fiber = yield* consumer.consume().pipe(
          Stream.runForEach((m) =>
            Effect.andThen(m.ack, () => ++count === 100 ? Deferred.succeed(halfway, undefined) : Effect.void)
          ),
          Effect.forkChild
        )
        yield* Deferred.await(halfway)
        yield* Scope.close(scope, Exit.void)
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.isSuccess(exit), `consume ended with ${String(exit)}`)
        assert.isAtLeast(count, 100)
      }))

    it.effect("taking a few messages from a consume Stream, again and again, leaves no fiber or subscription behind", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const client = yield* NatsClient.NatsClient
        yield* makeStream("takes")
        yield* publishMany("takes.a", 400)
        // acks none: nats.js' iterator path, whose pump waits for room in the Stream's buffer
        const consumer = yield* Consumer.make({ stream: "takes", config: { durable: "taker", ackPolicy: "none" } })
        // the server's count, once what was sent before (unsubscribes included) has reached it
        const subscriptions = client.flush.pipe(
          Effect.andThen(server.monitor(`/connz?cid=${client.connection.info?.client_id}`)),
          Effect.map((connz) =>
            (connz as { connections: ReadonlyArray<{ subscriptions: number }> }).connections[0]?.subscriptions
          )
        )
        const before = yield* subscriptions
        // every fiber started by the consume Streams (and what they fork) is counted while it lives
        let live = 0
        const fibers: Metric.FiberRuntimeMetricsService = {
          recordFiberStart: () => {
            live++
          },
          recordFiberEnd: () => {
            live--
          }
        }
        for (let i = 0; i < 20; i++) {
          // a slow reader: the pump finds the buffer full and waits for room
          const taken = yield* consumer.consume({ maxMessages: 5, bufferSize: 2 }).pipe(
            Stream.mapEffect((m) => Effect.as(Effect.sleep("5 millis"), m)),
            Stream.take(3),
            Stream.runCollect,
            Effect.provideService(Metric.FiberRuntimeMetrics, fibers)
          )
          assert.strictEqual(taken.length, 3)
        }
        // released synchronously or nearly: wait until every fiber ended (bounded)
        yield* Effect.suspend(() => live === 0 ? Effect.void : Effect.fail(live)).pipe(
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 100 }))),
          Effect.ignore
        )
        assert.strictEqual(live, 0, "fibers left behind by the consume Streams")
        const after = yield* subscriptions.pipe(
          Effect.repeat({
            schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 100 })),
            while: (n) => n !== before
          })
        )
        assert.strictEqual(after, before, "subscriptions left behind")
      }))

    it.effect("an ephemeral consumer from a config without a durable name; Consumer.layer provides the tag", () =>
      Effect.gen(function*() {
        const jsm = yield* makeStream("ephemeral")
        yield* publishMany("ephemeral.a", 5)
        const names = yield* Effect.gen(function*() {
          const consumer = yield* Consumer.Consumer
          const values = yield* consumer.consume({ codec: Codec.string }).pipe(
            Stream.take(5),
            Stream.mapEffect((m) => Effect.as(m.ack, m.value)),
            Stream.runCollect
          )
          assert.deepStrictEqual(values, ["0", "1", "2", "3", "4"])
          assert.strictEqual(consumer.kind, "config")
          const name = yield* consumer.name
          const ci = yield* consumer.info
          assert.strictEqual(ci.name, name)
          assert.isUndefined(ci.config.durable_name)
          return name
        }).pipe(
          Effect.provide(Consumer.layer({ stream: "ephemeral", config: { inactiveThreshold: Duration.seconds(30) } }))
        )
        assert.isString(names)
        const listed = yield* Effect.promise(() => jsm.consumers.list("ephemeral").next())
        assert.include(listed.map((c) => c.name), names)
      }))

    it.effect("binding to a missing durable fails with ConsumerNotFound; a missing stream with StreamNotFound", () =>
      Effect.gen(function*() {
        yield* makeStream("bind")
        const noConsumer = yield* Effect.flip(Consumer.make({ stream: "bind", durable: "nobody" }))
        assert.strictEqual(noConsumer.reason._tag, "ConsumerNotFound")
        const noStream = yield* Effect.flip(Consumer.make({ stream: "nostream", durable: "nobody" }))
        assert.strictEqual(noStream.reason._tag, "StreamNotFound")
      }))
  })

  layer(Env, { excludeTestServices: true })("faults", (it) => {
    it.effect(
      "consume keeps going across a server restart: no acked message redelivered, none missing",
      () =>
        Effect.gen(function*() {
          const server = yield* NatsServer.NatsServer
          yield* makeStream("restart")
          const consumer = yield* Consumer.make({
            stream: "restart",
            config: { durable: "survivor", ackWait: Duration.seconds(3) }
          })
          const acked = new Set<number>()
          let redeliveredAcked = 0
          const reached = (n: number) => Deferred.make<void>().pipe(Effect.map((d) => ({ n, d })))
          const half = yield* reached(100)
          const all = yield* reached(200)
          const fiber = yield* consumer.consume({ expires: "2 seconds" }).pipe(
            Stream.runForEach((m) =>
              Effect.gen(function*() {
                if (acked.has(m.streamSequence)) redeliveredAcked++
                const ok = yield* Effect.result(m.ackAck({ timeout: "2 seconds" }))
                if (ok._tag === "Success") acked.add(m.streamSequence)
                if (acked.size >= half.n) yield* Deferred.succeed(half.d, undefined)
                if (acked.size >= all.n) yield* Deferred.succeed(all.d, undefined)
              })
            ),
            Effect.forkChild
          )
          yield* publishMany("restart.a", 100)
          yield* Deferred.await(half.d)
          yield* server.restart()
          // publish the second half once the client is back (publishes fail while it reconnects)
          yield* publishMany("restart.a", 100, 100).pipe(
            Effect.timeout("3 seconds"),
            Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 50 })))
          )
          yield* Deferred.await(all.d).pipe(Effect.timeout("30 seconds"))
          yield* Fiber.interrupt(fiber)
          assert.strictEqual(redeliveredAcked, 0)
          assert.strictEqual(acked.size, 200)
          assert.deepStrictEqual([...acked].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1))
        }),
      60_000
    )

    it.effect(
      "a deleted consumer that the handle owns is recreated and messages keep flowing",
      () =>
        Effect.gen(function*() {
          const jsm = yield* makeStream("recreate")
          const consumer = yield* Consumer.make({
            stream: "recreate",
            config: { durable: "phoenix", ackWait: Duration.seconds(5) },
            recovery: Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 20 }))
          })
          const statuses = yield* consumer.status.pipe(
            Stream.filter((s) => s._tag === "Recovered"),
            Stream.take(1),
            Stream.runCollect,
            Effect.forkChild
          )
          const first = yield* Deferred.make<void>()
          const values = yield* Ref.make<Array<string>>([])
          const fiber = yield* consumer.consume({
            codec: Codec.string,
            expires: "1 second",
            idleHeartbeat: "500 millis"
          })
            .pipe(
              Stream.tap((m) => Effect.andThen(m.ack, Ref.update(values, (all) => [...all, m.value]))),
              Stream.tap((m) => m.value === "before" ? Deferred.succeed(first, undefined) : Effect.void),
              Stream.filter((m) => m.value === "after"),
              Stream.take(1),
              Stream.runDrain,
              Effect.forkChild
            )
          yield* publishRaw("recreate.a", "before")
          yield* Deferred.await(first)
          yield* Effect.promise(() => jsm.consumers.delete("recreate", "phoenix"))
          const recovered = yield* Fiber.join(statuses).pipe(Effect.timeout("10 seconds"))
          assert.strictEqual(recovered.length, 1)
          yield* publishRaw("recreate.a", "after")
          yield* Fiber.join(fiber).pipe(Effect.timeout("10 seconds"))
          assert.include(yield* Ref.get(values), "after")
          const ci = yield* Effect.promise(() => jsm.consumers.info("recreate", "phoenix"))
          assert.strictEqual(ci.name, "phoenix")
        }),
      30_000
    )

    it.effect(
      "a deleted durable bound by name fails the stream with ConsumerNotFound once the schedule gives up",
      () =>
        Effect.gen(function*() {
          const jsm = yield* makeStream("gone")
          yield* Effect.promise(() => jsm.consumers.add("gone", { durable_name: "bound", ack_policy: "explicit" }))
          const consumer = yield* Consumer.make({
            stream: "gone",
            durable: "bound",
            recovery: Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 3 }))
          })
          const started = yield* Deferred.make<void>()
          const fiber = yield* consumer.consume({ expires: "1 second", idleHeartbeat: "500 millis" }).pipe(
            Stream.tap((m) => Effect.andThen(m.ack, Deferred.succeed(started, undefined))),
            Stream.runDrain,
            Effect.flip,
            Effect.forkChild
          )
          yield* publishRaw("gone.a", "x")
          yield* Deferred.await(started)
          yield* Effect.promise(() => jsm.consumers.delete("gone", "bound"))
          const error = yield* Fiber.join(fiber).pipe(Effect.timeout("15 seconds"))
          assert.strictEqual(error.reason._tag, "ConsumerNotFound")
        }),
      30_000
    )
  })
})

const consumerInfo = (jsm: JetStreamManager, stream: string, consumer: string) =>
  Effect.gen(function*() {
    const client = yield* NatsClient.NatsClient
    yield* client.flush.pipe(Effect.orDie)
    return yield* Effect.promise(() => jsm.consumers.info(stream, consumer))
  })

/**
 * The consumer's info once the acks sent before were applied: the server
 * applies acks asynchronously, so an info right after the last ack can lag
 * it (awaited while acks are pending, for up to 5 seconds; then the last one).
 */
const settledConsumerInfo = (jsm: JetStreamManager, stream: string, consumer: string) =>
  consumerInfo(jsm, stream, consumer).pipe(
    Effect.repeat({
      schedule: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 100 })),
      while: (ci) => ci.num_ack_pending > 0
    })
  )
