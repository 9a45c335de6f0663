import { assert, describe, it, layer } from "@effect/vitest"
import type { Msg } from "@nats-io/nats-core"
import { createUser } from "@nats-io/nkeys"
import {
  ConfigProvider,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Redacted,
  Schedule,
  Scope,
  Stream
} from "effect"
import * as Net from "node:net"
import * as NatsServer from "../../src/layers/NatsServer.ts"
import * as Auth from "../../src/schemas/Auth.ts"
import type { ConnectionEvent } from "../../src/schemas/ConnectionEvent.ts"
import type * as E from "../../src/schemas/NatsError.ts"
import * as NatsClient from "../../src/services/NatsClient.ts"
import * as FaultProxy from "../support/faultProxy.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/** A client on `url` in the current scope, quiet (no event logs). */
const client = (url: string, options: NatsClient.NatsClientOptions = {}) =>
  NatsClient.make({ servers: url, logEvents: false, ...options })

const text = (msg: Msg) => msg.string()

/** Records a client's events and lets a test await one. */
const recordEvents = (c: NatsClient.NatsClientShape) =>
  Effect.gen(function*() {
    const seen: Array<ConnectionEvent> = []
    const waiters: Array<{
      readonly pred: (e: ConnectionEvent) => boolean
      readonly deferred: Deferred.Deferred<ConnectionEvent>
    }> = []
    const events = yield* c.eventsScoped
    yield* Effect.forkScoped(
      Stream.runForEach(events, (event) =>
        Effect.sync(() => {
          seen.push(event)
          for (const w of waiters) {
            if (w.pred(event)) Deferred.doneUnsafe(w.deferred, Exit.succeed(event))
          }
        }))
    )
    /** The first event matching `pred` at index `from` or later, awaited if need be. */
    const waitFor = (pred: (e: ConnectionEvent) => boolean, from = 0) =>
      Effect.gen(function*() {
        const found = seen.slice(from).find(pred)
        if (found !== undefined) return found
        const deferred = yield* Deferred.make<ConnectionEvent>()
        waiters.push({ pred, deferred })
        return yield* Deferred.await(deferred)
      })
    return { seen, waitFor }
  })

const tags = (events: ReadonlyArray<ConnectionEvent>) => events.map((e) => e._tag)

const reasonOf = (error: E.NatsError) => error.reason._tag

/** A port nothing listens on. */
const freePort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
)

interface Connz {
  readonly connections?: ReadonlyArray<{ readonly name?: string }> | null
}

const connectionNames = (server: NatsServer.NatsServerShape, query = "") =>
  Effect.map(server.monitor(`/connz${query}`), (json) => ((json as Connz).connections ?? []).map((c) => c.name ?? ""))

// ---------------------------------------------------------------------------
// one shared server, live clock
// ---------------------------------------------------------------------------

layer(NatsServer.layer({ jetstream: false }), { excludeTestServices: true })("NatsClient (shared server)", (it) => {
  it.effect("wildcards: * matches exactly one token, > one or more", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const star = yield* nc.subscribeScoped("service.*.events")
      const tail = yield* nc.subscribeScoped("logs.>")
      const logsStar = yield* nc.subscribeScoped("logs.*")
      const subjects = [
        "service.a.events",
        "service.events",
        "service.a.b.events",
        "service.a.events.x",
        "service.b.events",
        "logs",
        "logs.app",
        "logs.app.error",
        "logs.a.b.c",
        "other.logs.x"
      ]
      for (const s of subjects) yield* nc.publish(s, s)
      // sentinels, published last, matching each pattern
      yield* nc.publish("service.zz-end.events", "end")
      yield* nc.publish("logs.zz-end", "end")
      const upToEnd = (stream: Stream.Stream<Msg, E.NatsError>) =>
        stream.pipe(
          Stream.takeUntil((m) => m.subject.includes("zz-end")),
          Stream.map((m) => m.subject),
          Stream.runCollect
        )
      assert.deepStrictEqual(yield* upToEnd(star), [
        "service.a.events",
        "service.b.events",
        "service.zz-end.events"
      ])
      assert.deepStrictEqual(yield* upToEnd(tail), ["logs.app", "logs.app.error", "logs.a.b.c", "logs.zz-end"])
      assert.deepStrictEqual(yield* upToEnd(logsStar), ["logs.app", "logs.zz-end"])
    }))

  it.effect("publishAll publishes an iterable or a Stream in order, and stops at the first invalid message", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const received = yield* nc.subscribeScoped("bulk.>")
      const fiber = yield* received.pipe(
        Stream.take(30_000),
        Stream.map((m) => m.string()),
        Stream.runCollect,
        Effect.forkChild
      )
      const batch = (from: number, n: number) =>
        Array.from({ length: n }, (_, i) => ({ subject: `bulk.${(from + i) % 3}`, payload: String(from + i) }))
      yield* nc.publishAll(batch(0, 10_000), { flushEvery: 3000 })
      yield* nc.publishAll(Stream.fromIterable(batch(10_000, 20_000)), { flushEvery: 1000 })
      const all = yield* Fiber.join(fiber)
      assert.deepStrictEqual(all, Array.from({ length: 30_000 }, (_, i) => String(i)))

      const before = nc.connection.stats().outMsgs
      const error = yield* Effect.flip(
        nc.publishAll([{ subject: "bulk.ok", payload: "1" }, { subject: "bulk..bad" }, { subject: "bulk.never" }])
      )
      assert.strictEqual(reasonOf(error), "InvalidSubject")
      assert.strictEqual(nc.connection.stats().outMsgs, before + 1)
    }))

  it.effect("publishAll refuses a flushEvery that is not a positive integer, before sending anything", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const before = nc.connection.stats().outMsgs
      for (const flushEvery of [0, -1, Number.NaN, 1.5, Number.POSITIVE_INFINITY]) {
        for (const messages of [[{ subject: "bulk.x" }], Stream.make({ subject: "bulk.x" })]) {
          // bounded: before the fix a flushEvery of 0 or NaN flushed forever and never read a message
          const error = yield* Effect.flip(nc.publishAll(messages, { flushEvery })).pipe(Effect.timeout("5 seconds"))
          assert.strictEqual(reasonOf(error), "InvalidArgument")
          assert.include(error.message, "flushEvery")
        }
      }
      assert.strictEqual(nc.connection.stats().outMsgs, before)
    }))

  it.effect("closing a serve scope stops intake and still answers requests in flight", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const responder = yield* nc.serve("graceful.rpc", (msg) =>
        Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Deferred.await(release)),
          Effect.as(`done ${msg.string()}`)
        )).pipe(Scope.provide(scope))
      const pending = yield* Effect.forkChild(nc.request("graceful.rpc", "a", { timeout: "5 seconds" }))
      yield* Deferred.await(started)
      // close the scope while the handler runs; let it finish only afterwards
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Deferred.succeed(release, undefined)
      const reply = yield* Fiber.join(pending)
      yield* Fiber.join(closing)
      assert.strictEqual(reply.string(), "done a")
      // the responder ended cleanly, and no longer takes requests
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(responder)))
      const after = yield* Effect.flip(nc.request("graceful.rpc", "b", { timeout: "1 second" }))
      assert.strictEqual(reasonOf(after), "NoResponders")
    }))

  it.effect("closing a serve scope answers the requests already on their way to it (a drain, not a drop)", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const caller = yield* client(server.url)
      // the responder's connection goes through a proxy, stalled while the requests are on their way
      const proxy = yield* FaultProxy.make(server.url)
      const responderConnection = yield* client(proxy.url)
      const scope = yield* Scope.make()
      yield* responderConnection.serve("drain.echo", (msg) => Effect.succeed(msg.data)).pipe(Scope.provide(scope))
      yield* proxy.stall()
      const calls = yield* Effect.forkChild(Effect.forEach(
        ["1", "2", "3"],
        (text) => Effect.map(caller.request("drain.echo", text, { timeout: "5 seconds" }), (m) => m.string()),
        { concurrency: 3 }
      ))
      // the server has them (and has sent them into the stalled proxy): the second flush's PING goes
      // after the requests (the first one may go before the forked calls have sent them)
      yield* caller.flush
      yield* caller.flush
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow
      yield* proxy.resume()
      assert.deepStrictEqual(yield* Fiber.join(calls), ["1", "2", "3"])
      yield* Fiber.join(closing)
    }))

  it.effect("a responder stopped while the connection is down ends at once, and so does the connection's release", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const proxy = yield* FaultProxy.make(server.url)
      const connectionScope = yield* Scope.make()
      const responderConnection = yield* client(proxy.url, { reconnectSchedule: Schedule.spaced("30 seconds") }).pipe(
        Scope.provide(connectionScope)
      )
      const events = yield* recordEvents(responderConnection)
      const scope = yield* Scope.make()
      const responder = yield* responderConnection.serve("outage.echo", (msg) => Effect.succeed(msg.data)).pipe(
        Scope.provide(scope)
      )
      // down, and its redials hang (accepted, never answered)
      yield* proxy.stall()
      yield* proxy.cut()
      yield* events.waitFor((e) => e._tag === "Disconnected")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(responder)))
      // nothing left to drain: the subscription was dropped, not left waiting for the server's answer
      yield* Scope.close(connectionScope, Exit.void)
      assert.isBelow(Date.now() - started, 2000)
    }))

  it.effect("events are logged through the caller's Logger", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const lines: Array<string> = []
      const capture = Logger.make<unknown, void>(({ message }) => {
        lines.push(String(message))
      })
      const scope = yield* Scope.make()
      yield* NatsClient.make({ servers: server.url }).pipe(
        Scope.provide(scope),
        Effect.provide(Logger.layer([capture]))
      )
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(lines.some((l) => l.includes("nats: connection closed")), JSON.stringify(lines))
    }))

  it.effect("onEvent runs for every event to Closed; a failing handler is logged and the connection keeps working", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const lines: Array<string> = []
      const capture = Logger.make<unknown, void>(({ message }) => {
        lines.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const seen: Array<string> = []
      const scope = yield* Scope.make()
      const nc = yield* NatsClient.make({
        servers: server.url,
        logEvents: false,
        onEvent: (event) =>
          event._tag === "Disconnected"
            ? Effect.fail("handler broke")
            : Effect.sync(() => void seen.push(event._tag))
      }).pipe(Scope.provide(scope), Effect.provide(Logger.layer([capture])))
      const events = yield* nc.eventsScoped
      yield* Effect.promise(() => nc.connection.reconnect())
      yield* events.pipe(Stream.takeUntil((event) => event._tag === "Reconnected"), Stream.runDrain)
      yield* nc.publish("on.event", "still works")
      yield* nc.flush
      yield* Scope.close(scope, Exit.void)
      assert.include(seen, "Reconnected")
      assert.strictEqual(seen[seen.length - 1], "Closed")
      assert.isTrue(lines.some((l) => l.includes("the onEvent handler failed on Disconnected")), JSON.stringify(lines))
      const invalid = yield* Effect.flip(NatsClient.make({ servers: server.url, onEvent: "log" as never }))
      assert.strictEqual(reasonOf(invalid), "InvalidArgument")
    }))

  it.effect("the events stream ends after Closed", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* nc.eventsScoped
      const all = yield* Effect.forkChild(Stream.runCollect(events))
      yield* nc.drain
      assert.deepStrictEqual(tags(yield* Fiber.join(all)), ["Closed"])
    }))

  it.effect("a subscription buffer is also bounded by bytes", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* recordEvents(nc)
      const sub = yield* nc.subscribeScoped("bytes.x", { maxBytes: 1000, overflow: "dropNewest" })
      for (let i = 0; i < 10; i++) yield* nc.publish("bytes.x", String(i).repeat(300))
      yield* nc.flush
      yield* events.waitFor((e) => e._tag === "SlowConsumer")
      yield* nc.publish("bytes.x", "end")
      const got = yield* sub.pipe(Stream.map(text), Stream.takeUntil((t) => t === "end"), Stream.runCollect)
      assert.deepStrictEqual(got.map((t) => t[0]), ["0", "1", "2", "e"])
    }))

  it.effect("the last SlowConsumer event of a subscription has its total of dropped messages", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* recordEvents(nc)
      const received = yield* Effect.scoped(Effect.gen(function*() {
        const sub = yield* nc.subscribeScoped("drops.x", { bufferSize: 10, overflow: "dropOldest" })
        // two bursts, each overflowing the buffer, read between them and after
        let count = 0
        for (const burst of [0, 1]) {
          for (let i = 0; i < 500; i++) yield* nc.publish("drops.x", `${burst}-${i}`)
          yield* nc.flush
          count += (yield* sub.pipe(Stream.take(10), Stream.runCollect)).length
        }
        return count
      }))
      // events are delivered asynchronously: wait for the one with the total, then check it is the last
      yield* events.waitFor((e) => e._tag === "SlowConsumer" && e.dropped === 1000 - received)
      yield* nc.flush
      const drops = events.seen.filter((e) => e._tag === "SlowConsumer")
      const last = drops[drops.length - 1]
      assert.strictEqual(last?._tag === "SlowConsumer" ? last.dropped : -1, 1000 - received)
    }))

  it.effect("a backlog past half the buffer comes out whole and in order: payloads, headers, replies, respond", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      // past 1,000 of 2,000 buffered, messages are held as bytes until they are read
      const sub = yield* nc.subscribeScoped("backlog.>", { bufferSize: 2_000 })
      const answers = yield* nc.subscribeScoped("backlog-answers")
      const expected = Array.from({ length: 1_800 }, (_, i) => ({
        subject: `backlog.${i % 7}`,
        body: String(i).repeat(i % 40),
        header: i % 3 === 0 ? `h${i}` : undefined,
        reply: i % 5 === 0 ? "backlog-answers" : ""
      }))
      for (const m of expected) {
        yield* nc.publish(m.subject, m.body, {
          ...(m.header === undefined ? {} : { headers: { "X-I": m.header } }),
          ...(m.reply === "" ? {} : { reply: m.reply })
        })
      }
      yield* nc.flush
      const got = yield* Stream.runCollect(Stream.take(sub, expected.length))
      assert.deepStrictEqual(
        got.map((m) => ({ subject: m.subject, body: m.string(), header: m.headers?.get("X-I"), reply: m.reply })),
        expected.map((m) => ({ ...m, header: m.header ?? undefined }))
      )
      // the last one was held: it answers through the connection
      assert.isTrue(got[1_795]?.respond("answered"))
      assert.deepStrictEqual((yield* Stream.runCollect(Stream.take(answers, 1))).map(text), ["answered"])
    }))

  it.effect("dropOldest over a held backlog keeps the last bufferSize messages, intact", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* recordEvents(nc)
      const sub = yield* nc.subscribeScoped("backlog-drop", { bufferSize: 1_200, overflow: "dropOldest" })
      for (let i = 0; i < 5_000; i++) yield* nc.publish("backlog-drop", `${i}:${"x".repeat(i % 300)}`)
      yield* nc.flush
      yield* events.waitFor((e) => e._tag === "SlowConsumer" && e.subject === "backlog-drop")
      const got = yield* Stream.runCollect(Stream.take(Stream.map(sub, text), 1_200))
      assert.deepStrictEqual(
        got,
        Array.from({ length: 1_200 }, (_, k) => `${3_800 + k}:${"x".repeat((3_800 + k) % 300)}`)
      )
    }))

  it.effect("invalid buffer options and reply subjects fail before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const before = nc.connection.stats().outMsgs
      for (const options of [{ bufferSize: 0 }, { bufferSize: 1.5 }, { maxBytes: -1 }]) {
        const error = yield* Effect.flip(Stream.runDrain(nc.subscribe("opts.x", options)))
        assert.strictEqual(reasonOf(error), "InvalidArgument", JSON.stringify(options))
      }
      const reply = yield* Effect.flip(nc.publish("opts.x", "x", { reply: "inbox.*" }))
      assert.strictEqual(reasonOf(reply), "InvalidSubject")
      assert.strictEqual(nc.connection.stats().outMsgs, before)
    }))

  it.effect("headers round-trip (string and string[] values), with payload and reply subject", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const sub = yield* nc.subscribeScoped("hdr.test")
      yield* nc.publish("hdr.test", "body", {
        headers: { "X-One": "1", "X-Many": ["a", "b", "c"] },
        reply: "hdr.reply"
      })
      const [msg] = yield* Stream.runCollect(Stream.take(sub, 1))
      assert.isDefined(msg)
      if (msg === undefined) return
      assert.strictEqual(msg.string(), "body")
      assert.strictEqual(msg.reply, "hdr.reply")
      assert.strictEqual(msg.headers?.get("X-One"), "1")
      assert.deepStrictEqual(msg.headers?.values("X-Many"), ["a", "b", "c"])
    }))

  it.effect("queue group: 3 workers share 3,000 messages, each delivered exactly once", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const subs = yield* client(server.url)
      const pub = yield* client(server.url)
      const total = 3000
      const received: Array<Array<number>> = [[], [], []]
      let count = 0
      const done = yield* Deferred.make<void>()
      for (let w = 0; w < 3; w++) {
        const stream = yield* subs.subscribeScoped("jobs.run", { queue: "workers" })
        const mine = received[w] ?? []
        yield* Effect.forkScoped(Stream.runForEach(stream, (m) =>
          Effect.sync(() => {
            mine.push(Number(m.string()))
            if (++count === total) Deferred.doneUnsafe(done, Exit.void)
          })))
      }
      for (let i = 0; i < total; i++) yield* pub.publish("jobs.run", String(i))
      yield* pub.flush
      yield* Deferred.await(done)
      // anything extra (a duplicate) would have arrived before this round trip completes
      yield* subs.flush
      const all = received.flat()
      assert.strictEqual(all.length, total)
      assert.strictEqual(new Set(all).size, total)
      for (const mine of received) assert.isAbove(mine.length, 0)
    }))

  it.effect("request/reply via serve; Timeout; NoResponders", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const responder = yield* client(server.url)
      const caller = yield* client(server.url)
      yield* responder.serve("rpc.echo", (msg) => Effect.succeed(`echo:${msg.string()}`))
      const reply = yield* caller.request("rpc.echo", "hi")
      assert.strictEqual(reply.string(), "echo:hi")

      // a subscriber that never answers: the request times out
      yield* responder.subscribeScoped("rpc.silent")
      const [elapsed, timeout] = yield* Effect.timed(
        Effect.flip(caller.request("rpc.silent", "x", { timeout: "200 millis" }))
      )
      assert.strictEqual(reasonOf(timeout), "Timeout")
      assert.isTrue(timeout.isRetryable)
      assert.isAtLeast(Duration.toMillis(elapsed), 190)
      assert.isBelow(Duration.toMillis(elapsed), 2000)

      const none = yield* Effect.flip(caller.request("rpc.nobody", "x", { timeout: "5 seconds" }))
      assert.strictEqual(reasonOf(none), "NoResponders")
    }))

  it.effect("concurrent requests each get their own reply; an interrupted request's late reply goes nowhere", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const responder = yield* client(server.url)
      const caller = yield* client(server.url)
      const lateStarted = yield* Deferred.make<void>()
      const lateAnswered = yield* Deferred.make<void>()
      yield* responder.serve("rpc.double", (msg) => {
        const text = msg.string()
        if (text !== "late") return Effect.succeed(String(Number(text) * 2))
        return Deferred.succeed(lateStarted, undefined).pipe(
          Effect.andThen(Effect.sleep("300 millis")),
          Effect.as("late reply"),
          Effect.ensuring(Deferred.succeed(lateAnswered, undefined))
        )
      }, { concurrency: 64 })
      const late = yield* Effect.forkChild(caller.request("rpc.double", "late", { timeout: "30 seconds" }))
      yield* Deferred.await(lateStarted)
      const [interruptedIn] = yield* Effect.timed(Fiber.interrupt(late))
      assert.isBelow(Duration.toMillis(interruptedIn), 100)
      // while the late reply is on its way and after it arrived, every request gets its own reply
      const ids = Array.from({ length: 500 }, (_, i) => i)
      const during = yield* Effect.forEach(ids, (i) => caller.request("rpc.double", String(i)), { concurrency: 100 })
      yield* Deferred.await(lateAnswered)
      const after = yield* Effect.forEach(ids, (i) => caller.request("rpc.double", String(i)), { concurrency: 100 })
      for (const replies of [during, after]) {
        assert.deepStrictEqual(replies.map((m) => Number(m.string())), ids.map((i) => i * 2))
      }
    }))

  it.effect("a request pending when its connection closes fails at once with ConnectionClosed", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const responder = yield* client(server.url)
      yield* responder.subscribeScoped("rpc.never")
      const scope = yield* Scope.make()
      const caller = yield* client(server.url).pipe(Scope.provide(scope))
      const pending = yield* Effect.forkChild(Effect.flip(caller.request("rpc.never", "x", { timeout: "30 seconds" })))
      // the request is out once the server has seen the caller's next flush
      yield* caller.flush
      const [elapsed, error] = yield* Effect.timed(
        Effect.andThen(Effect.promise(() => caller.connection.close()), Fiber.join(pending))
      )
      assert.strictEqual(reasonOf(error), "ConnectionClosed")
      assert.isBelow(Duration.toMillis(elapsed), 5000)
      // and a request on the closed connection fails at once, without waiting for its timeout
      const [afterIn, after] = yield* Effect.timed(
        Effect.flip(caller.request("rpc.never", "x", { timeout: "30 seconds" }))
      )
      assert.strictEqual(reasonOf(after), "ConnectionClosed")
      assert.isBelow(Duration.toMillis(afterIn), 5000)
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("a request whose reply inbox may not be subscribed fails with PermissionViolation, not a timeout", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({
        jetstream: false,
        config:
          "authorization { users: [ { user: u, password: p, permissions: { subscribe: { deny: [\"_INBOX.>\"] } } } ] }"
      })
      const caller = yield* client(server.url, { auth: Auth.userPassword("u", Redacted.make("p")) })
      const [elapsed, error] = yield* Effect.timed(
        Effect.flip(caller.request("rpc.any", "x", { timeout: "20 seconds" }))
      )
      assert.strictEqual(reasonOf(error), "PermissionViolation")
      assert.isBelow(Duration.toMillis(elapsed), 10_000)
    }))

  it.effect("serve with concurrency n runs at most n handlers at once, and does run n at once", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const responder = yield* client(server.url)
      const caller = yield* client(server.url)
      const n = 3
      let inFlight = 0
      let maxInFlight = 0
      const allIn = yield* Deferred.make<void>()
      yield* responder.serve("rpc.slow", (msg) =>
        Effect.gen(function*() {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          if (inFlight === n) Deferred.doneUnsafe(allIn, Exit.void)
          // hold until n handlers run together (fails the test by timeout if they never do)
          yield* Deferred.await(allIn)
          yield* Effect.sleep("20 millis")
          inFlight--
          return msg.data
        }), { concurrency: n })
      const replies = yield* Effect.forEach(
        Array.from({ length: 4 * n }, (_, i) => String(i)),
        (i) => Effect.map(caller.request("rpc.slow", i, { timeout: "10 seconds" }), text),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies, Array.from({ length: 4 * n }, (_, i) => String(i)))
      assert.strictEqual(maxInFlight, n)
    }))

  it.effect("requestMany collects the replies of several responders", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const a = yield* client(server.url)
      const b = yield* client(server.url)
      const caller = yield* client(server.url)
      yield* a.serve("rpc.census", () => Effect.succeed("a"))
      yield* b.serve("rpc.census", () => Effect.succeed("b"))
      yield* a.serve("rpc.census", () => Effect.succeed("c"))
      const replies = yield* caller.requestMany("rpc.census", "who", { maxMessages: 3, maxWait: "5 seconds" }).pipe(
        Stream.map(text),
        Stream.runCollect
      )
      assert.deepStrictEqual([...replies].sort(), ["a", "b", "c"])
    }))

  it.effect("requestMany: no responders, oversized payload, invalid subject", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const none = yield* Effect.flip(
        Stream.runCollect(nc.requestMany("rpc.nobody.many", "x", { maxWait: "300 millis" }))
      )
      assert.strictEqual(reasonOf(none), "NoResponders")
      const big = yield* Effect.flip(Stream.runCollect(nc.requestMany("rpc.big", new Uint8Array(nc.maxPayload() + 1))))
      assert.strictEqual(reasonOf(big), "MaxPayloadExceeded")
      if (big.reason._tag === "MaxPayloadExceeded") {
        assert.strictEqual(big.reason.size, nc.maxPayload() + 1)
        assert.strictEqual(big.reason.maxPayload, nc.maxPayload())
      }
      const invalid = yield* Effect.flip(Stream.runCollect(nc.requestMany("a..b", "x")))
      assert.strictEqual(reasonOf(invalid), "InvalidSubject")
    }))

  it.effect("serve: a failing handler answers with the service error headers; request fails with ServiceError", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      yield* nc.serve(
        "rpc.fails",
        (msg) => msg.string() === "fail" ? Effect.fail(new Error("boom")) : Effect.succeed("fine")
      ).pipe(Effect.provide(Logger.layer([])))
      const raw = yield* Effect.promise(() => nc.connection.request("rpc.fails", "fail"))
      assert.include(raw.headers?.get(NatsClient.ServiceErrorHeader) ?? "", "boom")
      assert.strictEqual(raw.headers?.get(NatsClient.ServiceErrorCodeHeader), "500")
      const failed = yield* Effect.flip(nc.request("rpc.fails", "fail"))
      assert.strictEqual(reasonOf(failed), "ServiceError")
      assert.include(failed.message, "boom")
      assert.isTrue(failed.isRetryable)
      assert.strictEqual((yield* nc.request("rpc.fails", "ok")).string(), "fine")
    }))

  it.effect("invalid subjects fail with InvalidSubject before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const watcher = yield* client(server.url)
      const everything = yield* watcher.subscribeScoped(">")
      const before = nc.connection.stats().outMsgs
      for (const subject of ["", "a..b", "a b", "a.", ".a", "a\tb", "a.*", "a.>", "*", ">"]) {
        const error = yield* Effect.flip(nc.publish(subject, "x"))
        assert.strictEqual(reasonOf(error), "InvalidSubject", `publish ${JSON.stringify(subject)}`)
        const requestError = yield* Effect.flip(nc.request(subject, "x"))
        assert.strictEqual(reasonOf(requestError), "InvalidSubject", `request ${JSON.stringify(subject)}`)
      }
      for (const pattern of ["", "a..b", "a b", "a.", "a.>.b"]) {
        const error = yield* Effect.flip(nc.subscribeScoped(pattern))
        assert.strictEqual(reasonOf(error), "InvalidSubject", `subscribe ${JSON.stringify(pattern)}`)
        const streamError = yield* Effect.flip(Stream.runDrain(nc.subscribe(pattern)))
        assert.strictEqual(reasonOf(streamError), "InvalidSubject", `subscribe ${JSON.stringify(pattern)}`)
      }
      assert.strictEqual(nc.connection.stats().outMsgs, before)
      yield* nc.publish("sentinel.invalid", "end")
      yield* nc.flush
      const [first] = yield* Stream.runCollect(Stream.take(everything, 1))
      assert.strictEqual(first?.subject, "sentinel.invalid")
    }))

  it.effect("an invalid subject's error says what is wrong once, naming the operation and the subject", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const error = yield* Effect.flip(nc.publish("a b", "x"))
      assert.strictEqual(
        error.message,
        `Invalid subject "a b": contains a space at index 1 (whitespace and control characters are not allowed)`
      )
      assert.strictEqual(error.reason.operation, "publish")
      assert.strictEqual(error.reason.subject, "a b")
      const pattern = yield* Effect.flip(nc.subscribeScoped("a.>.b"))
      assert.strictEqual(pattern.message, `Invalid subject pattern "a.>.b": '>' must be the last token`)
    }))

  it.effect("overflow \"fail\": the stream fails with SlowConsumer", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* recordEvents(nc)
      const sub = yield* nc.subscribeScoped("burst.fail", { bufferSize: 4, overflow: "fail" })
      for (let i = 0; i < 10; i++) yield* nc.publish("burst.fail", String(i))
      yield* nc.flush
      const error = yield* Effect.flip(Stream.runDrain(sub))
      assert.strictEqual(reasonOf(error), "SlowConsumer")
      const event = yield* events.waitFor((e) => e._tag === "SlowConsumer")
      assert.deepInclude(event, { subject: "burst.fail", bufferSize: 4 })
    }))

  it.effect("overflow \"dropNewest\" keeps the first messages; \"dropOldest\" the last ones", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* recordEvents(nc)
      const newest = yield* nc.subscribeScoped("burst.n", { bufferSize: 4, overflow: "dropNewest" })
      const oldest = yield* nc.subscribeScoped("burst.o", { bufferSize: 4, overflow: "dropOldest" })
      for (let i = 0; i < 10; i++) {
        yield* nc.publish("burst.n", String(i))
        yield* nc.publish("burst.o", String(i))
      }
      yield* nc.flush
      const firstFour = yield* Stream.runCollect(Stream.take(Stream.map(newest, text), 4))
      const lastFour = yield* Stream.runCollect(Stream.take(Stream.map(oldest, text), 4))
      assert.deepStrictEqual(firstFour, ["0", "1", "2", "3"])
      assert.deepStrictEqual(lastFour, ["6", "7", "8", "9"])
      // the streams are still alive and nothing else was buffered
      yield* nc.publish("burst.n", "end")
      yield* nc.publish("burst.o", "end")
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.take(Stream.map(newest, text), 1)), ["end"])
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.take(Stream.map(oldest, text), 1)), ["end"])
      yield* events.waitFor((e) => e._tag === "SlowConsumer" && e.subject === "burst.n")
      yield* events.waitFor((e) => e._tag === "SlowConsumer" && e.subject === "burst.o")
    }))

  it.effect("a subscription ends (without failing) after max messages, or when its scope closes", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const limited = yield* nc.subscribeScoped("max.x", { max: 3 })
      for (let i = 0; i < 5; i++) yield* nc.publish("max.x", String(i))
      yield* nc.flush
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.map(limited, text)), ["0", "1", "2"])

      const scope = yield* Scope.make()
      const scoped = yield* nc.subscribeScoped("scoped.x").pipe(Scope.provide(scope))
      yield* nc.publish("scoped.x", "a")
      yield* nc.flush
      yield* Scope.close(scope, Exit.void)
      // already buffered messages are still handed out, then the stream ends
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.map(scoped, text)), ["a"])
    }))

  it.effect("drain: subscriptions end, awaitClosed succeeds, the last event is Closed", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const nc = yield* client(server.url)
      const events = yield* recordEvents(nc)
      const sub = yield* nc.subscribeScoped("drain.me")
      const running = yield* Effect.forkScoped(Stream.runCollect(Stream.map(sub, text)))
      yield* nc.publish("drain.me", "one")
      yield* nc.drain
      yield* nc.awaitClosed
      assert.isTrue(nc.connection.isClosed())
      assert.deepStrictEqual(yield* Fiber.join(running), ["one"])
      const closed = yield* events.waitFor((e) => e._tag === "Closed")
      assert.deepStrictEqual(closed, { _tag: "Closed" })
      assert.strictEqual(reasonOf(yield* Effect.flip(nc.publish("drain.me", "late"))), "ConnectionClosed")
    }))

  it.effect("releasing the scope drains: a last message is delivered, the connection is gone from /connz", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const watcher = yield* client(server.url)
      const sub = yield* watcher.subscribeScoped("drain.last")
      const name = `drain-test-${Date.now()}`
      const scope = yield* Scope.make()
      const nc = yield* client(server.url, { name }).pipe(Scope.provide(scope))
      assert.include(yield* connectionNames(server), name)
      yield* nc.publish("drain.last", "bye")
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(nc.connection.isClosed())
      const [msg] = yield* Stream.runCollect(Stream.take(sub, 1))
      assert.strictEqual(msg?.string(), "bye")
      // the server notices the closed socket asynchronously
      yield* connectionNames(server).pipe(
        Effect.flatMap((names) => names.includes(name) ? Effect.fail("still connected") : Effect.void),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 100 })))
      )
      const closedNames = yield* connectionNames(server, "?state=closed")
      assert.include(closedNames, name)
    }))
})

// ---------------------------------------------------------------------------
// servers with their own configuration, live clock
// ---------------------------------------------------------------------------

describe("NatsClient (dedicated servers)", () => {
  it.live("payloads over max_payload (headers included) fail with MaxPayloadExceeded before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false, config: "max_payload: 1024" })
      const nc = yield* client(server.url)
      const watcher = yield* client(server.url)
      const everything = yield* watcher.subscribeScoped(">")
      assert.strictEqual(nc.maxPayload(), 1024)
      const before = nc.connection.stats().outMsgs

      const tooBig = yield* Effect.flip(nc.publish("big", new Uint8Array(1025)))
      assert.strictEqual(reasonOf(tooBig), "MaxPayloadExceeded")
      if (tooBig.reason._tag === "MaxPayloadExceeded") {
        assert.strictEqual(tooBig.reason.size, 1025)
        assert.strictEqual(tooBig.reason.maxPayload, 1024)
      }
      const tooBigString = yield* Effect.flip(nc.publish("big", "é".repeat(513))) // 1026 bytes
      assert.strictEqual(reasonOf(tooBigString), "MaxPayloadExceeded")
      // 1000 bytes of payload fit, but not with headers on top
      const withHeaders = yield* Effect.flip(
        nc.publish("big", new Uint8Array(1000), { headers: { "X-Padding": "p".repeat(40) } })
      )
      assert.strictEqual(reasonOf(withHeaders), "MaxPayloadExceeded")
      const request = yield* Effect.flip(nc.request("big", new Uint8Array(2000)))
      assert.strictEqual(reasonOf(request), "MaxPayloadExceeded")
      assert.strictEqual(nc.connection.stats().outMsgs, before)

      // exactly max_payload is fine
      yield* nc.publish("big.ok", new Uint8Array(1024))
      yield* nc.flush
      const [first] = yield* Stream.runCollect(Stream.take(everything, 1))
      assert.strictEqual(first?.subject, "big.ok")
      assert.strictEqual(first?.data.length, 1024)
    }))

  const authCases: ReadonlyArray<{
    readonly name: string
    readonly config: string
    readonly good: Auth.Auth
    readonly bad: Auth.Auth
    readonly secret: string
  }> = (() => {
    const user = createUser()
    const other = createUser()
    const seed = new TextDecoder().decode(user.getSeed())
    const wrongSeed = new TextDecoder().decode(other.getSeed())
    return [
      {
        name: "user/password",
        config: "authorization { user: alice, password: s3cr3t-pw }",
        good: Auth.userPassword("alice", "s3cr3t-pw"),
        bad: Auth.userPassword("alice", "wr0ng-pw-secret"),
        secret: "wr0ng-pw-secret"
      },
      {
        name: "token",
        config: "authorization { token: t0k3n-right }",
        good: Auth.token("t0k3n-right"),
        bad: Auth.token("t0k3n-wrong-secret"),
        secret: "t0k3n-wrong-secret"
      },
      {
        name: "nkey",
        config: `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`,
        good: Auth.nkey(seed),
        bad: Auth.nkey(wrongSeed),
        secret: wrongSeed
      }
    ]
  })()

  for (const c of authCases) {
    it.live(`auth ${c.name}: the right secret connects, a wrong one fails fast with AuthorizationViolation`, () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.make({ jetstream: false, config: c.config })
        const ok = yield* client(server.url, { auth: c.good })
        const sub = yield* ok.subscribeScoped("auth.ping")
        yield* ok.publish("auth.ping", "pong")
        assert.deepStrictEqual(yield* Stream.runCollect(Stream.take(Stream.map(sub, text), 1)), ["pong"])

        const [elapsed, error] = yield* Effect.timed(Effect.flip(client(server.url, { auth: c.bad })))
        assert.strictEqual(reasonOf(error), "AuthorizationViolation")
        assert.isFalse(error.isRetryable)
        // no retries, no waiting for the connect timeout (default retries alone would take 1.5 s)
        assert.isBelow(Duration.toMillis(elapsed), 1000)
        for (const rendered of [error.message, String(error), JSON.stringify(error), JSON.stringify(error.reason)]) {
          assert.notInclude(rendered, c.secret)
        }

        const anonymous = yield* Effect.flip(client(server.url))
        assert.strictEqual(reasonOf(anonymous), "AuthorizationViolation")
      }))
  }

  it.live("layerConfig reads NATS_URL, NATS_USER and NATS_PASSWORD from a ConfigProvider", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({
        jetstream: false,
        config: "authorization { user: cfg, password: cfg-secret }"
      })
      const program = Effect.gen(function*() {
        const nc = yield* NatsClient.NatsClient
        yield* nc.flush
        return nc.connection.info?.port
      })
      const withEnv = (env: Record<string, string>) =>
        program.pipe(
          Effect.provide(
            NatsClient.NatsClient.layerConfig().pipe(
              Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
            )
          )
        )
      const port = yield* withEnv({ NATS_URL: server.url, NATS_USER: "cfg", NATS_PASSWORD: "cfg-secret" })
      assert.strictEqual(port, server.nodes[0]?.port)

      const wrong = yield* Effect.flip(
        withEnv({ NATS_URL: server.url, NATS_USER: "cfg", NATS_PASSWORD: "nope-secret" })
      )
      assert.strictEqual(wrong._tag, "NatsError")
      if (wrong._tag === "NatsError") {
        assert.strictEqual(reasonOf(wrong), "AuthorizationViolation")
        assert.notInclude(String(wrong), "nope-secret")
      }

      const half = yield* Effect.flip(withEnv({ NATS_URL: server.url, NATS_USER: "cfg" }))
      assert.strictEqual(half._tag, "ConfigError")
      assert.include(String(half), "NATS_USER and NATS_PASSWORD must be set together")
    }))

  it.live("a subscription keeps receiving across a server restart; events show Disconnected then Reconnected", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false })
      const nc = yield* client(server.url, { reconnectSchedule: Schedule.spaced("50 millis") })
      const events = yield* recordEvents(nc)
      const sub = yield* nc.subscribeScoped("restart.>")
      const received = yield* Effect.forkScoped(
        Stream.runCollect(Stream.take(Stream.map(sub, text), 2))
      )
      yield* nc.publish("restart.before", "before")
      yield* nc.flush
      yield* server.restart()
      yield* events.waitFor((e) => e._tag === "Reconnected")
      yield* nc.publish("restart.after", "after")
      assert.deepStrictEqual(yield* Fiber.join(received), ["before", "after"])
      const lifecycle = tags(events.seen).filter((t) => t === "Disconnected" || t === "Reconnected")
      assert.deepStrictEqual(lifecycle, ["Disconnected", "Reconnected"])
    }))

  it.live("a successful reconnect resets the reconnect schedule", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false })
      // 5 attempts per outage; each outage below takes at least 3, so two outages
      // only both recover when the schedule restarts after the first reconnect
      const nc = yield* client(server.url, {
        reconnectSchedule: Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: 4 }))
      })
      const events = yield* recordEvents(nc)
      const outage = Effect.gen(function*() {
        const from = events.seen.length
        yield* server.stop()
        yield* events.waitFor((e) => e._tag === "Reconnecting" && e.attempt === 2, from)
        yield* server.start()
        yield* events.waitFor((e) => e._tag === "Reconnected", from)
        return events.seen.slice(from).flatMap((e) => e._tag === "Reconnecting" ? [e.attempt] : [])
      }).pipe(Effect.timeout("10 seconds"))
      const first = yield* outage
      const second = yield* outage
      for (const attempts of [first, second]) {
        assert.isAtLeast(attempts.length, 3, JSON.stringify(events.seen))
        assert.deepStrictEqual(attempts, Array.from({ length: attempts.length }, (_, i) => i + 1))
      }
      const sub = yield* nc.subscribeScoped("reset.x")
      yield* nc.publish("reset.x", "alive")
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.take(Stream.map(sub, text), 1)), ["alive"])
      assert.isFalse(nc.connection.isClosed())
    }))

  it.live("an outage's events come in order: Disconnected, Reconnecting (attempts 1, 2, ...), Reconnected", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false })
      const nc = yield* client(server.url, { reconnectSchedule: Schedule.spaced("100 millis") })
      const events = yield* recordEvents(nc)
      yield* server.stop()
      yield* events.waitFor((e) => e._tag === "Reconnecting" && e.attempt === 2)
      yield* server.start()
      yield* events.waitFor((e) => e._tag === "Reconnected")
      const outage = tags(events.seen).filter((t) => t !== "ServersUpdated")
      const firstReconnecting = outage.indexOf("Reconnecting")
      assert.strictEqual(outage[0], "Disconnected", JSON.stringify(outage))
      assert.strictEqual(outage.filter((t) => t === "Disconnected").length, 1, JSON.stringify(outage))
      assert.isAbove(firstReconnecting, 0)
      assert.strictEqual(outage.at(-1), "Reconnected")
    }))

  it.live("an exhausted reconnect schedule closes the connection: everything fails with ConnectionClosed", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false })
      const delay = 100
      const times = 3
      const nc = yield* client(server.url, {
        reconnectSchedule: Schedule.spaced(`${delay} millis`).pipe(Schedule.upTo({ times }))
      })
      const events = yield* recordEvents(nc)
      const sub = yield* nc.subscribeScoped("gone.>")
      const running = yield* Effect.forkScoped(Stream.runDrain(sub))
      const closed = yield* Effect.forkScoped(nc.awaitClosed)
      const responder = yield* nc.serve("gone.rpc", () => Effect.succeed("unreachable"))
      yield* server.stop()
      yield* events.waitFor((e) => e._tag === "Disconnected")
      const t0 = Date.now()
      yield* events.waitFor((e) => e._tag === "Closed")
      const elapsed = Date.now() - t0

      const subExit = yield* Fiber.await(running)
      assert.isTrue(Exit.isFailure(subExit), "the subscription stream fails")
      const subError = yield* Effect.flip(Fiber.join(running))
      assert.strictEqual(reasonOf(subError), "ConnectionClosed")
      const closedError = yield* Effect.flip(Fiber.join(closed))
      assert.strictEqual(reasonOf(closedError), "ConnectionClosed")
      assert.strictEqual(reasonOf(yield* Effect.flip(Fiber.join(responder))), "ConnectionClosed")
      assert.strictEqual(reasonOf(yield* Effect.flip(nc.publish("gone.x", "x"))), "ConnectionClosed")
      assert.strictEqual(reasonOf(yield* Effect.flip(nc.request("gone.x", "x"))), "ConnectionClosed")
      assert.strictEqual(reasonOf(yield* Effect.flip(nc.flush)), "ConnectionClosed")
      assert.strictEqual(reasonOf(yield* Effect.flip(Stream.runDrain(nc.subscribe("gone.y")))), "ConnectionClosed")

      const reconnecting = events.seen.filter((e) => e._tag === "Reconnecting")
      assert.strictEqual(reconnecting.length, times + 1, JSON.stringify(events.seen))
      assert.deepStrictEqual(
        reconnecting.map((e) => e._tag === "Reconnecting" ? e.attempt : -1),
        Array.from({ length: times + 1 }, (_, i) => i + 1)
      )
      assert.strictEqual(tags(events.seen).at(-1), "Closed")
      // first attempt at once, then `times` delays
      assert.isAtLeast(elapsed, times * delay - 20)
      assert.isBelow(elapsed, times * delay + 1000)
    }))

  it.live("first connect to a port with no server fails with ConnectionRefused within bounds", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const [elapsed, error] = yield* Effect.timed(Effect.flip(client(`nats://127.0.0.1:${port}`, {
        connectSchedule: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 3 })),
        connectAttemptTimeout: "500 millis",
        connectTimeout: "3 seconds"
      })))
      assert.strictEqual(reasonOf(error), "ConnectionRefused")
      assert.isTrue(error.isRetryable)
      assert.isAtLeast(Duration.toMillis(elapsed), 140)
      assert.isBelow(Duration.toMillis(elapsed), 2000)
    }))

  it.live("first connect: connectTimeout bounds endless retries with a Timeout", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const [elapsed, error] = yield* Effect.timed(Effect.flip(client(`nats://127.0.0.1:${port}`, {
        connectSchedule: Schedule.spaced("50 millis"),
        connectTimeout: "400 millis"
      })))
      assert.strictEqual(reasonOf(error), "Timeout")
      assert.isAtLeast(Duration.toMillis(elapsed), 390)
      assert.isBelow(Duration.toMillis(elapsed), 1500)
    }))

  it.live("first connect: a server that accepts but never answers is bounded by connectAttemptTimeout", () =>
    Effect.gen(function*() {
      const sockets = new Set<Net.Socket>()
      const blackhole = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Server>((resolve) => {
            const s = Net.createServer((socket) => {
              sockets.add(socket)
            })
            s.listen(0, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) =>
          Effect.promise(() =>
            new Promise<void>((resolve) => {
              for (const socket of sockets) socket.destroy()
              s.close(() => resolve())
            })
          )
      )
      const address = blackhole.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const [elapsed, error] = yield* Effect.timed(Effect.flip(client(`nats://127.0.0.1:${port}`, {
        connectSchedule: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 1 })),
        connectAttemptTimeout: "300 millis",
        connectTimeout: "5 seconds"
      })))
      assert.strictEqual(reasonOf(error), "Timeout")
      assert.isAtLeast(Duration.toMillis(elapsed), 590)
      assert.isBelow(Duration.toMillis(elapsed), 2000)
    }))

  it.live("interrupting the first connect leaves no connection behind", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false })
      const target = server.nodes[0]?.port ?? 0
      // a proxy that holds each dial until released, so the interrupt lands mid-connect
      const accepted = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const pairs: Array<Net.Socket> = []
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Server>((resolve) => {
            const s = Net.createServer((socket) => {
              pairs.push(socket)
              socket.pause()
              Deferred.doneUnsafe(accepted, Exit.void)
              void Effect.runPromise(Deferred.await(release)).then(() => {
                const upstream = Net.connect(target, "127.0.0.1")
                pairs.push(upstream)
                socket.pipe(upstream)
                upstream.pipe(socket)
                socket.resume()
                socket.on("close", () => upstream.destroy())
                upstream.on("close", () => socket.destroy())
              })
            })
            s.listen(0, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) =>
          Effect.promise(() =>
            new Promise<void>((resolve) => {
              for (const socket of pairs) socket.destroy()
              s.close(() => resolve())
            })
          )
      )
      const address = proxy.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const name = `interrupted-${Date.now()}`
      const fiber = yield* Effect.forkChild(Effect.scoped(client(`nats://127.0.0.1:${port}`, { name })))
      yield* Deferred.await(accepted)
      // the interrupt takes effect at once: it does not wait for the connect (timeout) to finish
      const [interruptTime] = yield* Effect.timed(Fiber.interrupt(fiber))
      assert.isBelow(Duration.toMillis(interruptTime), 1000)
      Deferred.doneUnsafe(release, Exit.void)
      // the late connect completes on the server and is closed at once by the client
      yield* connectionNames(server, "?state=closed").pipe(
        Effect.flatMap((names) => names.includes(name) ? Effect.void : Effect.fail("not closed yet")),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 150 })))
      )
      assert.notInclude(yield* connectionNames(server), name)
    }))
})
