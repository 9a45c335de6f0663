import { assert, describe, layer } from "@effect/vitest"
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream"
import { jetstreamManager } from "@nats-io/jetstream"
import { Arbitrary, Effect, Exit, Fiber, Layer, Result, Schedule, Schema, Stream } from "effect"
import { LocalNats, NatsClient, NatsError, NatsServer, Subject, TypedSubject } from "../../src/index.ts"
import * as JetStream from "../../src/services/JetStream.ts"

const encoder = new TextEncoder()

const TestLayer = JetStream.JetStream.layer.pipe(Layer.provideMerge(LocalNats.layer()))

const manager = Effect.gen(function*() {
  const client = yield* NatsClient.NatsClient
  return yield* Effect.promise(() => jetstreamManager(client.connection))
})

let streams = 0
/** A fresh stream capturing `<prefix>.>`; deleted with the test's scope. */
const freshStream = (config: Partial<StreamConfig> = {}) =>
  Effect.gen(function*() {
    const jsm = yield* manager
    const name = `S${++streams}_${Date.now().toString(36)}`
    const prefix = name.toLowerCase()
    yield* Effect.acquireRelease(
      Effect.promise(() => jsm.streams.add({ name, subjects: [`${prefix}.>`], ...config })),
      () => Effect.promise(() => jsm.streams.delete(name).catch(() => false))
    )
    return { jsm, name, prefix }
  })

const messageCount = (jsm: JetStreamManager, name: string) =>
  Effect.promise(() => jsm.streams.info(name)).pipe(Effect.map((info) => info.state.messages))

const reasonOf = (error: NatsError.NatsError | JetStream.PublishAllError) =>
  error._tag === "NatsError" ? error.reason._tag : error.error.reason._tag

describe("JetStream", () => {
  layer(TestLayer, { excludeTestServices: true })("on a real server", (it) => {
    it.effect("publish returns the stream and the sequence", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { name, prefix } = yield* freshStream()
        const first = yield* js.publish(`${prefix}.a`, "one")
        const second = yield* js.publish(`${prefix}.b`, encoder.encode("two"))
        assert.strictEqual(first.stream, name)
        assert.strictEqual(first.seq, 1)
        assert.isFalse(first.duplicate)
        assert.strictEqual(second.seq, 2)
      }))

    it.effect("the same msgId within the duplicate window is acked as a duplicate and stored once", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const first = yield* js.publish(`${prefix}.order`, "x", { msgId: "order-1" })
        const again = yield* js.publish(`${prefix}.order`, "x", { msgId: "order-1" })
        assert.isFalse(first.duplicate)
        assert.isTrue(again.duplicate)
        assert.strictEqual(again.seq, first.seq)
        assert.strictEqual(yield* messageCount(jsm, name), 1)
        const other = yield* js.publish(`${prefix}.order`, "x", { msgId: "order-2" })
        assert.isFalse(other.duplicate)
        assert.strictEqual(yield* messageCount(jsm, name), 2)
      }))

    it.effect("each expectation: a mismatch fails with WrongLastSequence and stores nothing, a match stores", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const s = `${prefix}.e`
        yield* js.publish(s, "1", { msgId: "m1" }) // seq 1
        yield* js.publish(`${prefix}.other`, "2", { msgId: "m2" }) // seq 2
        const mismatches: ReadonlyArray<JetStream.Expect> = [
          { lastSequence: 1 },
          { lastSubjectSequence: 2 },
          { lastMsgId: "m1" },
          { streamName: "NOT_THIS_ONE" }
        ]
        for (const expect of mismatches) {
          const error = yield* Effect.flip(js.publish(s, "bad", { expect }))
          assert.strictEqual(error.reason._tag, "WrongLastSequence", JSON.stringify(expect))
          assert.isFalse(error.isRetryable)
        }
        assert.strictEqual(yield* messageCount(jsm, name), 2)
        assert.strictEqual((yield* js.publish(s, "ok", { msgId: "m3", expect: { lastMsgId: "m2" } })).seq, 3)
        assert.strictEqual((yield* js.publish(s, "ok", { expect: { lastSequence: 3 } })).seq, 4)
        assert.strictEqual((yield* js.publish(s, "ok", { expect: { lastSubjectSequence: 4 } })).seq, 5)
        assert.strictEqual((yield* js.publish(s, "ok", { expect: { streamName: name } })).seq, 6)
        assert.strictEqual(
          (yield* js.publish(`${prefix}.fresh`, "ok", { expect: { lastSubjectSequence: 0 } })).seq,
          7
        )
      }))

    it.effect("a subject no stream captures fails with NoStreamForSubject", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const error = yield* Effect.flip(js.publish("nobody.captures.this", "x"))
        assert.strictEqual(error.reason._tag, "NoStreamForSubject")
        assert.include(error.message, "nobody.captures.this")
        assert.isFalse(error.isRetryable)
      }))

    // The JetStream API's error answers carry `"streams": null` too (no meta leader on a cluster; JetStream
    // stopping during a restart, when for a moment the account has none): the lookup could not say, so the
    // publish is in doubt, not without a stream.
    it.effect("an error answer to the stream lookup is retryable NoResponders, not NoStreamForSubject", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const answers = [
          {
            error: { code: 503, err_code: 10008, description: "JetStream system temporarily unavailable" },
            streams: null
          },
          { error: { code: 503, err_code: 10039, description: "jetstream not enabled for account" }, streams: null },
          { streams: null }
        ]
        let asked = 0
        const fake = nats.connection.subscribe("fakeapi.STREAM.NAMES", {
          callback: (_, m) => {
            m.respond(encoder.encode(JSON.stringify(answers[asked++])))
          }
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => fake.unsubscribe()))
        yield* Effect.promise(() => nats.connection.flush())
        const js = yield* JetStream.make({ apiPrefix: "fakeapi" })
        for (const description of ["JetStream system temporarily unavailable", "jetstream not enabled for account"]) {
          const inDoubt = yield* Effect.flip(js.publish("nobody.captures.this", "x"))
          assert.strictEqual(inDoubt.reason._tag, "NoResponders")
          assert.isTrue(inDoubt.isRetryable)
          assert.include(inDoubt.message, description)
        }
        const none = yield* Effect.flip(js.publish("nobody.captures.this", "x"))
        assert.strictEqual(none.reason._tag, "NoStreamForSubject")
        assert.strictEqual(asked, 3)
      }))

    it.effect("headers reach the stored message", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const ack = yield* js.publish(`${prefix}.h`, "with headers", {
          headers: { "X-Trace": "abc-123", "X-Multi": ["a", "b"] },
          msgId: "h-1"
        })
        const stored = yield* Effect.promise(() => jsm.streams.getMessage(name, { seq: ack.seq }))
        assert.isDefined(stored)
        assert.strictEqual(stored?.header.get("X-Trace"), "abc-123")
        assert.deepStrictEqual(stored?.header.values("X-Multi"), ["a", "b"])
        assert.strictEqual(stored?.header.get("Nats-Msg-Id"), "h-1")
        assert.strictEqual(stored?.string(), "with headers")
      }))

    it.effect("invalid subjects and oversize payloads fail before anything is sent", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const client = yield* NatsClient.NatsClient
        const before = client.connection.stats().outMsgs
        const invalid = yield* Effect.flip(js.publish("a..b", "x"))
        assert.strictEqual(invalid.reason._tag, "InvalidSubject")
        const wildcard = yield* Effect.flip(js.publish("a.*", "x"))
        assert.strictEqual(wildcard.reason._tag, "InvalidSubject")
        const big = yield* Effect.flip(js.publish("a.b", new Uint8Array(client.maxPayload() + 1)))
        assert.strictEqual(big.reason._tag, "MaxPayloadExceeded")
        assert.strictEqual(client.connection.stats().outMsgs, before)
      }))

    it.effect("invalid options (window, timeout) fail with InvalidArgument naming them, before anything is sent", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const messages = [{ subject: `${prefix}.a`, payload: "x" }]
        for (const window of [0, -3, 1.5, Number.NaN]) {
          const error = yield* Effect.flip(Stream.runDrain(js.publishAll(messages, { window })))
          assert.strictEqual(reasonOf(error), "InvalidArgument")
          assert.include(error.message, "window")
          const viaSink = yield* Effect.flip(Stream.run(Stream.fromIterable(messages), js.sink({ window })))
          assert.strictEqual(reasonOf(viaSink), "InvalidArgument")
        }
        for (const timeout of [-1, Number.NaN, "soon" as never, "Infinity" as const]) {
          const one = yield* Effect.flip(js.publish(`${prefix}.a`, "x", { timeout }))
          assert.strictEqual(reasonOf(one), "InvalidArgument")
          assert.include(one.message, "timeout")
          const many = yield* Effect.flip(Stream.runDrain(js.publishAll(messages, { timeout })))
          assert.strictEqual(reasonOf(many), "InvalidArgument")
        }
        const context = yield* Effect.flip(JetStream.make({ timeout: 0 }))
        assert.strictEqual(reasonOf(context), "InvalidArgument")
        assert.strictEqual(yield* messageCount(jsm, name), 0)
      }))

    it.effect("a retry schedule does not retry a failure that will not change (no stream yet)", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const attempts: Array<unknown> = []
        const schedule = Schedule.spaced("200 millis").pipe(
          Schedule.tap((meta) => Effect.sync(() => attempts.push(meta.input)))
        )
        const started = Date.now()
        const error = yield* Effect.flip(js.publish("not.yet.a.stream", "x", { msgId: "r1", retry: schedule }))
        assert.strictEqual(error.reason._tag, "NoStreamForSubject")
        assert.strictEqual(attempts.length, 0)
        assert.isBelow(Date.now() - started, 1000)
      }))

    it.effect("publishTyped encodes with the codec and fills in the template", () =>
      Effect.gen(function*() {
        const { jsm, name, prefix } = yield* freshStream()
        const Order = Schema.Struct({ id: Schema.String, cents: Schema.Int })
        const OrderCreated = TypedSubject.make(Subject.template(`${prefix}.{region}.created`), Order)
        const ack = yield* JetStream.publishTyped(OrderCreated, { id: "o1", cents: 250 }, {
          params: { region: "eu" },
          msgId: "o1"
        })
        const stored = yield* Effect.promise(() => jsm.streams.getMessage(name, { seq: ack.seq }))
        assert.strictEqual(stored?.subject, `${prefix}.eu.created`)
        assert.deepStrictEqual(stored?.json(), { id: "o1", cents: 250 })
        const bad = yield* Effect.flip(
          JetStream.publishTyped(OrderCreated, { id: "o2", cents: 1.5 }, { params: { region: "eu" } })
        )
        assert.strictEqual(bad._tag, "EncodeError")
        const badParam = yield* Effect.flip(
          JetStream.publishTyped(OrderCreated, { id: "o3", cents: 1 }, { params: { region: "a.b" } })
        )
        assert.strictEqual(badParam._tag === "NatsError" ? badParam.reason._tag : badParam._tag, "InvalidSubject")
        assert.strictEqual(yield* messageCount(jsm, name), 1)
        const typed = [1, 2, 3].map((i) =>
          JetStream.typedMessage(OrderCreated, { id: `b${i}`, cents: i }, { params: { region: "us" }, msgId: `b${i}` })
        )
        const messages = typed.flatMap((r) => Result.isSuccess(r) ? [r.success] : [])
        assert.strictEqual(messages.length, 3)
        assert.strictEqual(messages[0]?.subject, `${prefix}.us.created`)
        assert.strictEqual(messages[0]?.msgId, "b1")
        const acks = yield* Stream.runCollect(
          JetStream.JetStream.use((js) => Effect.succeed(js.publishAll(messages))).pipe(Stream.unwrap)
        )
        assert.deepStrictEqual(acks.map((a) => a.seq), [2, 3, 4])
        const invalid = JetStream.typedMessage(OrderCreated, { id: "x", cents: 0.5 }, { params: { region: "us" } })
        assert.isTrue(Result.isFailure(invalid))
      }))

    it.effect("publishAll: 100,000 messages, every ack checked, in order, none lost", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const n = 100_000
        const payload = new Uint8Array(128)
        const messages = Array.from({ length: n }, (_, i) => ({ subject: `${prefix}.bulk.${i % 10}`, payload }))
        const result = yield* js.publishAll(messages).pipe(
          Stream.runFold(() => ({ count: 0, lastSeq: 0, ordered: true }), (acc, ack) => {
            if (ack.seq !== acc.lastSeq + 1 || ack.stream !== name || ack.duplicate) acc.ordered = false
            acc.count++
            acc.lastSeq = ack.seq
            return acc
          })
        )
        assert.strictEqual(result.count, n)
        assert.isTrue(result.ordered)
        assert.strictEqual(result.lastSeq, n)
        assert.strictEqual(yield* messageCount(jsm, name), n)
      }), 60_000)

    it.effect("publishAll: a failing message in the middle fails the stream with a typed error naming it", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { prefix } = yield* freshStream()
        const messages: Array<JetStream.OutgoingMessage> = Array.from({ length: 50 }, (_, i) => ({
          subject: `${prefix}.m`,
          payload: String(i),
          msgId: `id-${i}`,
          ...(i === 20 ? { expect: { lastSequence: 999 } } : {})
        }))
        const acked: Array<JetStream.PubAck> = []
        const error = yield* Effect.flip(
          js.publishAll(messages, { window: 8 }).pipe(Stream.runForEach((ack) => Effect.sync(() => acked.push(ack))))
        )
        assert.strictEqual(error._tag, "PublishAllError")
        if (error._tag !== "PublishAllError") return
        assert.strictEqual(error.index, 20)
        assert.strictEqual(error.subject, `${prefix}.m`)
        assert.strictEqual(error.msgId, "id-20")
        assert.strictEqual(error.error.reason._tag, "WrongLastSequence")
        assert.include(error.message, "message 20")
        assert.include(error.message, "id-20")
        assert.deepStrictEqual(acked.map((a) => a.seq), Array.from({ length: 20 }, (_, i) => i + 1))
      }))

    it.effect("publishAll: an invalid message fails before it is sent, and nothing after it is sent", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const messages: Array<JetStream.OutgoingMessage> = Array.from({ length: 30 }, (_, i) => ({
          subject: i === 7 ? `${prefix}.bad subject` : `${prefix}.ok`,
          payload: String(i)
        }))
        const error = yield* Effect.flip(Stream.runDrain(js.publishAll(messages)))
        assert.strictEqual(error._tag, "PublishAllError")
        if (error._tag !== "PublishAllError") return
        assert.strictEqual(error.index, 7)
        assert.isUndefined(error.msgId)
        assert.strictEqual(reasonOf(error), "InvalidSubject")
        assert.strictEqual(yield* messageCount(jsm, name), 7)
      }))

    it.effect("publishAll: a subject no stream captures names the message and the reason", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { prefix } = yield* freshStream()
        const error = yield* Effect.flip(Stream.runDrain(js.publishAll([
          { subject: `${prefix}.a`, payload: "0" },
          { subject: "nobody.listens", payload: "1", msgId: "lost" },
          { subject: `${prefix}.a`, payload: "2" }
        ])))
        assert.strictEqual(error._tag, "PublishAllError")
        if (error._tag !== "PublishAllError") return
        assert.strictEqual(error.index, 1)
        assert.strictEqual(error.msgId, "lost")
        assert.strictEqual(reasonOf(error), "NoStreamForSubject")
      }))

    it.effect("publishAll of a Stream: upstream failures come after the acks before them", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const input = Stream.make(
          { subject: `${prefix}.s`, payload: "a" },
          { subject: `${prefix}.s`, payload: "b" }
        ).pipe(Stream.concat(Stream.fail("upstream broke" as const)))
        const acked: Array<number> = []
        const error = yield* Effect.flip(
          js.publishAll(input).pipe(Stream.runForEach((ack) => Effect.sync(() => acked.push(ack.seq))))
        )
        assert.strictEqual(error, "upstream broke")
        assert.deepStrictEqual(acked, [1, 2])
        assert.strictEqual(yield* messageCount(jsm, name), 2)
      }))

    it.effect("sink: summarises the acks, duplicates counted", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const { jsm, name, prefix } = yield* freshStream()
        const messages = Array.from({ length: 1000 }, (_, i) => ({
          subject: `${prefix}.k`,
          payload: String(i),
          msgId: `k-${i % 900}`
        }))
        const summary = yield* Stream.run(Stream.fromIterable(messages), js.sink({ window: 64 }))
        assert.strictEqual(summary.count, 1000)
        assert.strictEqual(summary.duplicates, 100)
        assert.strictEqual(summary.first?.seq, 1)
        // the last message (k-99) is a duplicate of seq 100
        assert.strictEqual(summary.last?.seq, 100)
        assert.isTrue(summary.last?.duplicate)
        assert.strictEqual(yield* messageCount(jsm, name), 900)
      }))

    it.effect("interrupting publish / publishAll with acks in flight leaves no unhandled rejection", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const client = yield* NatsClient.NatsClient
        const unhandled: Array<unknown> = []
        const onUnhandled = (reason: unknown) => unhandled.push(reason)
        process.on("unhandledRejection", onUnhandled)
        yield* Effect.addFinalizer(() => Effect.sync(() => process.off("unhandledRejection", onUnhandled)))
        // every publish here fails (no stream), after the interruption
        const messages = Array.from({ length: 5000 }, () => ({ subject: "nobody.here", payload: "x" }))
        const before = client.connection.stats().outMsgs
        const fiber = yield* js.publishAll(messages, { window: 512 }).pipe(Stream.runDrain, Effect.forkChild)
        for (let i = 0; i < 1000 && client.connection.stats().outMsgs - before < 100; i++) yield* Effect.yieldNow
        assert.isAtLeast(client.connection.stats().outMsgs - before, 100)
        yield* Fiber.interrupt(fiber)
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.hasInterrupts(exit), String(exit))
        const one = yield* js.publish("nobody.here", "x").pipe(Effect.forkChild)
        yield* Effect.yieldNow
        yield* Fiber.interrupt(one)
        // a failing batch: the acks after the first failure are in flight when the stream fails
        const failed = yield* Effect.flip(Stream.runDrain(js.publishAll(messages, { window: 512 })))
        assert.strictEqual(failed._tag, "PublishAllError")
        yield* Effect.promise(() => client.connection.flush())
        yield* Effect.sleep("300 millis")
        assert.deepStrictEqual(unhandled, [])
      }))

    it.effect.prop(
      "publishAll stores exactly the given payloads, in order",
      [Arbitrary.array(Arbitrary.schema(Schema.String), { maxLength: 40 })],
      ([payloads]) =>
        Effect.gen(function*() {
          const js = yield* JetStream.JetStream
          const { jsm, name, prefix } = yield* freshStream()
          const acks = yield* js.publishAll(payloads.map((payload) => ({ subject: `${prefix}.p`, payload })), {
            window: 7
          }).pipe(Stream.runCollect)
          assert.strictEqual(acks.length, payloads.length)
          const stored: Array<Array<number>> = []
          for (const ack of acks) {
            const msg = yield* Effect.promise(() => jsm.streams.getMessage(name, { seq: ack.seq }))
            stored.push(msg === null ? [-1] : Array.from(msg.data))
          }
          // compared as bytes: strings are sent UTF-8 encoded (lone surrogates become U+FFFD)
          assert.deepStrictEqual(stored, payloads.map((p) => Array.from(encoder.encode(p))))
          assert.strictEqual(yield* messageCount(jsm, name), payloads.length)
        }).pipe(Effect.scoped),
      { timeout: 30_000, arbitrary: { runs: 25 } }
    )
  })

  layer(TestLayer, { excludeTestServices: true })("with a server that goes away", (it) => {
    it.effect("a Timeout is retried by the schedule; the msgId keeps one stored copy", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
        const server = yield* NatsServer.NatsServer
        const { jsm, name, prefix } = yield* freshStream({ duplicate_window: 60_000_000_000 })
        yield* js.publish(`${prefix}.before`, "0")
        const failures: Array<string> = []
        const schedule = Schedule.spaced("100 millis").pipe(
          Schedule.tap((meta) =>
            Effect.sync(() =>
              failures.push(NatsError.isNatsError(meta.input) ? meta.input.reason._tag : String(meta.input))
            )
          ),
          Schedule.upTo({ times: 100 })
        )
        yield* server.stop()
        const fiber = yield* js.publish(`${prefix}.during`, "1", {
          msgId: "during-1",
          timeout: "300 millis",
          retry: schedule
        }).pipe(Effect.forkChild)
        yield* Effect.sleep("1200 millis")
        yield* server.start()
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        assert.isAbove(failures.length, 0)
        assert.isTrue(failures.every((tag) => tag === "Timeout"), failures.join(","))
        assert.strictEqual(yield* messageCount(jsm, name), 2)
        const stored = yield* Effect.promise(() => jsm.streams.getMessage(name, { last_by_subj: `${prefix}.during` }))
        assert.strictEqual(stored?.header.get("Nats-Msg-Id"), "during-1")
        // and again with the same id: a duplicate
        const again = yield* js.publish(`${prefix}.during`, "1", { msgId: "during-1" })
        assert.isTrue(again.duplicate)
      }), 30_000)
  })
})
