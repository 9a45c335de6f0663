/**
 * The catalogue of wrong and hostile inputs: every one is a typed failure of
 * that input (or of that one message), before anything is sent where it can
 * be checked, and never stops a subscription, a responder or a processor.
 */
import { assert, describe, layer } from "@effect/vitest"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { Deferred, Duration, Effect, Layer, Redacted, Schema, Stream } from "effect"
import {
  Auth,
  Codec,
  Consumer,
  JetStream,
  JetStreamManager,
  LocalNats,
  NatsClient,
  NatsError,
  NatsServer,
  Processor,
  Rpc,
  TypedSubject
} from "../../src/index.ts"

interface Tree {
  readonly children: ReadonlyArray<Tree>
}
const Tree: Schema.Codec<Tree> = Schema.Struct({
  children: Schema.Array(Schema.suspend((): Schema.Codec<Tree> => Tree))
})
/** A tree `depth` levels deep, as JSON: a recursive Schema overflows the stack decoding it. */
const deep = (depth: number) => "{\"children\":[".repeat(depth) + "]}".repeat(depth)
const shallow = JSON.stringify({ children: [{ children: [] }] })

const Env = Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer).pipe(
  Layer.provideMerge(LocalNats.layer({ client: { logEvents: false } }))
)

const reasonOf = (error: unknown) =>
  NatsError.isNatsError(error) ? error.reason._tag : (error as { readonly _tag?: string })._tag

describe("hostile input", () => {
  layer(Env, { excludeTestServices: true })("on a real server", (it) => {
    it.effect("a payload nested too deeply for its Schema is a DecodeError of that message", () =>
      Effect.gen(function*() {
        const result = Codec.json(Tree).decode(new TextEncoder().encode(deep(20_000)))
        assert.isTrue(result._tag === "Failure")
        if (result._tag === "Failure") assert.include(result.failure.message, "nested too deeply")
      }))

    it.effect("a typed subscription skips a too-deep payload and goes on", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const Trees = TypedSubject.make("hostile.trees", Tree)
        const received = yield* TypedSubject.subscribeScoped(Trees)
        yield* nats.publish("hostile.trees", deep(20_000))
        yield* nats.publish("hostile.trees", shallow)
        const [first] = yield* Stream.runCollect(Stream.take(received, 1))
        assert.strictEqual(first?.value.children.length, 1)
      }))

    it.effect("Rpc: a too-deep request is answered 400; a too-deep reply is a DecodeError; serving goes on", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const Echo = Rpc.make("hostile.rpc", { request: Tree, response: Tree })
        yield* Rpc.serve(Echo, (tree) => Effect.succeed(tree))
        const rejected = yield* Effect.flip(nats.request("hostile.rpc", deep(20_000)))
        assert.strictEqual(rejected.reason._tag, "ServiceError")
        if (rejected.reason._tag === "ServiceError") assert.strictEqual(rejected.reason.code, 400)
        // a responder that answers with a hostile reply
        yield* nats.serve("hostile.rpc.deep", () => Effect.succeed(deep(20_000)))
        const Deep = Rpc.make("hostile.rpc.deep", { request: Tree, response: Tree })
        const undecodable = yield* Effect.flip(Rpc.call(Deep, { children: [] }))
        assert.strictEqual(reasonOf(undecodable), "DecodeError")
        assert.deepStrictEqual(yield* Rpc.call(Echo, { children: [] }), { children: [] })
      }))

    it.effect("Consumer and Processor: a too-deep message is terminated / dead-lettered, the next is processed", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const js = yield* JetStream.JetStream
        yield* jsm.createOrUpdateStream({ name: "HOSTILE", subjects: ["hostile.js.>"] })
        yield* jsm.createOrUpdateStream({ name: "HOSTILE_DLQ", subjects: ["hostile-dlq.>"] })
        yield* jsm.createOrUpdateConsumer("HOSTILE", { durable: "reader" })
        yield* jsm.createOrUpdateConsumer("HOSTILE", { durable: "worker" })
        yield* js.publish("hostile.js.a", deep(20_000))
        yield* js.publish("hostile.js.a", shallow)
        const reader = yield* Consumer.durable({ stream: "HOSTILE", durable: "reader" })
        const [read] = yield* reader.consume({ codec: Tree }).pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(read?.streamSequence, 2)
        const handled = yield* Deferred.make<number>()
        const worker = yield* Consumer.durable({ stream: "HOSTILE", durable: "worker" })
        yield* Processor.make({
          consumer: worker,
          codec: Tree,
          deadLetter: { subject: "hostile-dlq.trees" },
          handler: (_tree, envelope) => Deferred.succeed(handled, envelope.streamSequence)
        })
        assert.strictEqual(yield* Deferred.await(handled), 2)
        const dead = yield* jsm.getMessage("HOSTILE_DLQ", { lastBySubject: "hostile-dlq.trees" })
        assert.strictEqual(dead._tag, "Some")
        if (dead._tag === "Some") {
          assert.strictEqual(dead.value.headers?.get(Processor.DeadLetterHeaders.reason), "decode")
        }
      }))

    it.effect("a Processor handler that returns a Promise fails that message; the processor goes on", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const js = yield* JetStream.JetStream
        yield* jsm.createOrUpdateStream({ name: "PROMISES", subjects: ["promises.>"] })
        yield* jsm.createOrUpdateConsumer("PROMISES", { durable: "p" })
        const consumer = yield* Consumer.durable({ stream: "PROMISES", durable: "p" })
        const good = yield* Deferred.make<number>()
        yield* Processor.make({
          consumer,
          codec: Codec.string,
          decide: () => "term",
          handler: (value, envelope) =>
            value === "promise"
              // plain JavaScript: a Promise where an Effect is expected
              ? (Promise.resolve() as unknown as Effect.Effect<void>)
              : Deferred.succeed(good, envelope.streamSequence)
        })
        yield* js.publish("promises.a", "promise")
        yield* js.publish("promises.a", "effect")
        assert.strictEqual(yield* Deferred.await(good), 2)
      }))

    it.effect("invalid headers fail with InvalidArgument before anything is sent, on every publishing path", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const js = yield* JetStream.JetStream
        const empty = natsHeaders()
        empty.set("", "x")
        const bad: ReadonlyArray<NatsClient.HeadersInit> = [
          { "": "x" },
          { "a b": "x" },
          { "a:b": "x" },
          { "x-ok": "line\r\nbreak" },
          { "x-ok": ["fine", "new\nline"] },
          { "é": "x" },
          empty
        ]
        const before = nats.connection.stats().outMsgs
        for (const headers of bad) {
          const label = JSON.stringify(headers)
          assert.strictEqual(
            reasonOf(yield* Effect.flip(nats.publish("hostile.h", "x", { headers }))),
            "InvalidArgument"
          )
          assert.strictEqual(
            reasonOf(yield* Effect.flip(nats.request("hostile.h", "x", { headers }))),
            "InvalidArgument",
            label
          )
          assert.strictEqual(
            reasonOf(yield* Effect.flip(nats.publishAll([{ subject: "hostile.h", headers }]))),
            "InvalidArgument",
            label
          )
          assert.strictEqual(reasonOf(yield* Effect.flip(js.publish("hostile.h", "x", { headers }))), "InvalidArgument")
          const many = yield* Effect.flip(Stream.runDrain(js.publishAll([{ subject: "hostile.h", headers }])))
          assert.strictEqual(reasonOf(many._tag === "PublishAllError" ? many.error : many), "InvalidArgument", label)
        }
        assert.strictEqual(nats.connection.stats().outMsgs, before)
      }))

    it.effect("a subject, reply or queue group longer than the protocol line allows is refused; the connection stays up", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const events = yield* nats.eventsScoped
        const long = "a".repeat(10_000)
        const wide = "é".repeat(1400) // 2,800 bytes in UTF-8
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.publish(long, "x"))), "InvalidSubject")
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.publish(`${wide}.${wide}`, "x"))), "InvalidSubject")
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.request(long, "x"))), "InvalidSubject")
        assert.strictEqual(
          reasonOf(yield* Effect.flip(nats.publish(`x.${wide}`, "x", { reply: `y.${wide}` }))),
          "InvalidSubject"
        )
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.subscribeScoped(long))), "InvalidSubject")
        assert.strictEqual(
          reasonOf(yield* Effect.flip(nats.subscribeScoped(`q.${wide}`, { queue: wide }))),
          "InvalidArgument"
        )
        // the connection is still the same one, with nothing to report
        yield* nats.flush
        const seen = yield* events.pipe(Stream.take(1), Stream.runCollect, Effect.timeoutOption("200 millis"))
        assert.strictEqual(seen._tag, "None")
      }))

    it.effect("values of the wrong type from plain JavaScript are typed failures, before anything is sent", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const js = yield* JetStream.JetStream
        const before = nats.connection.stats().outMsgs
        const anything = <A>(u: unknown) => u as A
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.publish(anything(42), "x"))), "InvalidSubject")
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.publish("hostile.t", anything(42)))), "InvalidArgument")
        assert.strictEqual(
          reasonOf(yield* Effect.flip(nats.request("hostile.t", anything({ a: 1 })))),
          "InvalidArgument"
        )
        assert.strictEqual(reasonOf(yield* Effect.flip(js.publish("hostile.t", anything(null)))), "InvalidArgument")
        assert.strictEqual(reasonOf(yield* Effect.flip(nats.subscribeScoped(anything(undefined)))), "InvalidSubject")
        assert.strictEqual(
          reasonOf(yield* Effect.flip(nats.subscribeScoped("hostile.t", { queue: anything(7) }))),
          "InvalidArgument"
        )
        assert.strictEqual(nats.connection.stats().outMsgs, before)
      }))

    it.effect("counts and durations taken on trust before are InvalidArgument naming the option", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream({ name: "NUMBERS", subjects: ["numbers.>"] })
        yield* jsm.createOrUpdateConsumer("NUMBERS", { durable: "n" })
        const consumer = yield* Consumer.durable({ stream: "NUMBERS", durable: "n" })
        const named = (error: unknown, option: string) => {
          assert.strictEqual(reasonOf(error), "InvalidArgument", option)
          assert.include((error as Error).message, option)
        }
        named(
          yield* Effect.flip(nats.serve("numbers.s", () => Effect.void, { concurrency: Number.NaN })),
          "concurrency"
        )
        named(
          yield* Effect.flip(nats.serve("numbers.s", () => Effect.void, { gracePeriod: "soon" as never })),
          "gracePeriod"
        )
        named(yield* Effect.flip(nats.request("numbers.r", "x", { timeout: "abc" as never })), "timeout")
        named(yield* Effect.flip(nats.request("numbers.r", "x", { timeout: -5 })), "timeout")
        for (const batch of [0, -1, Number.NaN, 2.5]) {
          named(yield* Effect.flip(Stream.runDrain(consumer.fetch({ batch }))), "batch")
        }
        named(yield* Effect.flip(Stream.runDrain(consumer.consume({ maxMessages: 0 }))), "maxMessages")
        named(yield* Effect.flip(Stream.runDrain(consumer.consume({ expires: "10 millis" }))), "expires")
        named(yield* Effect.flip(consumer.next({ maxWait: Number.NaN })), "maxWait")
        named(
          yield* Effect.flip(
            Processor.make({ consumer, codec: Codec.string, concurrency: Number.NaN, handler: () => Effect.void })
          ),
          "concurrency"
        )
        const maxDeliver = yield* Effect.flip(jsm.createOrUpdateConsumer("NUMBERS", { durable: "m", maxDeliver: 0 }))
        assert.strictEqual(reasonOf(maxDeliver), "InvalidArgument")
        const maxMsgs = yield* Effect.flip(jsm.createOrUpdateStream({ name: "ZERO", subjects: ["zero.>"], maxMsgs: 0 }))
        assert.strictEqual(reasonOf(maxMsgs), "InvalidArgument")
      }))

    it.effect("a push durable made by another client (no flow control, no heartbeat) is taken over as it is", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const jsm = yield* JetStreamManager.JetStreamManager
        const js = yield* JetStream.JetStream
        yield* jsm.createOrUpdateStream({ name: "PUSHED_ELSEWHERE", subjects: ["elsewhere.>"] })
        // nats.go's defaults for a push durable: a deliver subject, no flow control, no idle heartbeat
        yield* Effect.promise(() =>
          jsm.manager.consumers.add("PUSHED_ELSEWHERE", {
            durable_name: "other",
            ack_policy: "explicit" as never,
            deliver_subject: "deliver.elsewhere"
          })
        )
        const consumer = yield* Consumer.fromConfig({
          stream: "PUSHED_ELSEWHERE",
          config: { durable: "other" },
          push: {}
        })
        yield* js.publish("elsewhere.a", "hello")
        const [first] = yield* consumer.consume({ codec: Codec.string }).pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(first?.value, "hello")
        yield* first?.ack ?? Effect.void
        const info = yield* jsm.consumerInfo("PUSHED_ELSEWHERE", "other")
        assert.strictEqual(info.config.deliverSubject, "deliver.elsewhere")
        assert.isFalse(info.config.flowControl ?? false)
        // asking for what the server will not change names the field
        const refused = yield* Effect.flip(
          Consumer.fromConfig({
            stream: "PUSHED_ELSEWHERE",
            config: { durable: "other" },
            push: { idleHeartbeat: "2 seconds" }
          })
        )
        assert.strictEqual(refused.reason._tag, "JetStreamApi")
        if (refused.reason._tag === "JetStreamApi") assert.strictEqual(refused.reason.field, "idleHeartbeat")
        yield* nats.flush
      }))
  })

  layer(NatsServer.layer({ jetstream: false }), { excludeTestServices: true })("connect options", (it) => {
    it.effect("unusable servers and credentials are InvalidArgument before anything is dialled, without secrets", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const connect = (options: NatsClient.NatsClientOptions) =>
          Effect.flip(NatsClient.make({ logEvents: false, connectSchedule: undefined, ...options }))
        const cases: ReadonlyArray<readonly [string, NatsClient.NatsClientOptions]> = [
          ["empty servers string", { servers: "" }],
          ["empty servers list", { servers: [] }],
          ["unparsable URL", { servers: "nats://exa mple:4222" }],
          ["port out of range", { servers: "nats://127.0.0.1:70000" }],
          ["other scheme", { servers: "http://127.0.0.1:4222" }],
          ["garbage NKey seed", { servers: server.url, auth: Auth.nkey("SUAGARBAGE-secret-seed") }],
          ["garbage creds", { servers: server.url, auth: Auth.creds("not a creds file secret-seed") }],
          ["empty creds", { servers: server.url, auth: Auth.creds("") }],
          ["empty token", { servers: server.url, auth: Auth.token("") }],
          ["bad duration", { servers: server.url, connectTimeout: "abc" as never }],
          ["URL and auth", { servers: "nats://u:secret-seed@127.0.0.1:1", auth: Auth.token("t") }]
        ]
        for (const [label, options] of cases) {
          const error = yield* connect(options)
          assert.strictEqual(error.reason._tag, "InvalidArgument", label)
          assert.isFalse(error.isRetryable, label)
          assert.notInclude(error.message, "secret-seed", label)
        }
      }))
  })

  describe("with authorization", () => {
    layer(
      NatsServer.layer({
        jetstream: false,
        config: "authorization { users: [ { user: alice, password: \"s3cr3t\", permissions: { publish: { deny: " +
          "[\"denied.>\"] } } } ] }"
      }),
      { excludeTestServices: true }
    )("permissions and URL credentials", (it) => {
      it.effect("nats://user:password@host connects with those credentials; a wrong password fails without it", () =>
        Effect.gen(function*() {
          const server = yield* NatsServer.NatsServer
          const port = server.nodes[0]?.port
          const ok = yield* NatsClient.make({ servers: `nats://alice:s3cr3t@127.0.0.1:${port}`, logEvents: false })
          yield* ok.flush
          const wrong = yield* Effect.flip(
            NatsClient.make({ servers: `nats://alice:n0pe-pw@127.0.0.1:${port}`, logEvents: false })
          )
          assert.strictEqual(wrong.reason._tag, "AuthorizationViolation")
          assert.notInclude(wrong.message, "n0pe-pw")
        }))

      it.effect("a request to a subject the user may not publish to fails at once with PermissionViolation", () =>
        Effect.gen(function*() {
          const server = yield* NatsServer.NatsServer
          const nats = yield* NatsClient.make({
            servers: server.url,
            auth: Auth.userPassword("alice", Redacted.make("s3cr3t")),
            logEvents: false
          })
          const [elapsed, error] = yield* Effect.timed(
            Effect.flip(nats.request("denied.rpc", "x", { timeout: "20 seconds" }))
          )
          assert.strictEqual(error.reason._tag, "PermissionViolation")
          assert.isBelow(Duration.toMillis(elapsed), 5_000)
        }))
    })
  })
})
