/**
 * JetStream publishing through faults, on real servers: a stream leader
 * killed on a 3-node cluster (an election: nobody answers on the stream's
 * subjects for a few seconds), a missing stream told apart from one in
 * election, and acks in flight when the connection drops.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule, Stream } from "effect"
import { JetStream, JetStreamManager, NatsClient, NatsServer } from "../../src/index.ts"
import { leaderOf, servicesOn } from "./cluster.ts"

const encoder = new TextEncoder()

/** Until `f` holds (polled every 100 ms, for at most 20 s). */
const eventually = <A, E, R>(f: Effect.Effect<A, E, R>, holds: (a: A) => boolean) =>
  f.pipe(
    Effect.flatMap((a) => holds(a) ? Effect.succeed(a) : Effect.fail("not yet" as const)),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 200 })
  )

/** A fresh R3 stream on `name.>`, its leader known; runs `test` on a client connected to a node that does not lead it. */
const onCluster = <A, E>(
  name: string,
  test: (
    leader: number,
    client: number
  ) => Effect.Effect<
    A,
    E,
    JetStream.JetStream | JetStreamManager.JetStreamManager | NatsClient.NatsClient | NatsServer.NatsServer
  >,
  clientIsLeader = false
) =>
  Effect.gen(function*() {
    const setup = Effect.gen(function*() {
      const jsm = yield* JetStreamManager.JetStreamManager
      yield* jsm.createOrUpdateStream({ name, subjects: [`${name}.>`], replicas: 3 })
      return yield* leaderOf(name)
    })
    const leader = yield* setup.pipe(Effect.provide(servicesOn(0)))
    const client = clientIsLeader ? leader : (leader + 1) % 3
    return yield* test(leader, client).pipe(Effect.provide(servicesOn(client)))
  })

const messages = (name: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    subject: `${name}.${i % 8}`,
    payload: encoder.encode(`${i}`),
    msgId: `${name}-${i}`
  }))

const retry = Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 100 }))

describe("JetStream publishing through faults (3-node cluster)", { timeout: 90_000 }, () => {
  it.live("a stream leader killed mid-publishAll: the retry rides out the election; every message stored once", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      yield* onCluster("FAILOVER", (leader) =>
        Effect.gen(function*() {
          const js = yield* JetStream.JetStream
          const jsm = yield* JetStreamManager.JetStreamManager
          const count = 3000
          let acked = 0
          let killedAt = 0
          let firstAfterKill = 0
          const fiber = yield* js.publishAll(messages("FAILOVER", count), { window: 64, retry }).pipe(
            Stream.runForEach((ack) =>
              Effect.gen(function*() {
                assert.strictEqual(ack.index, acked, "acks in input order, each naming its input")
                assert.strictEqual(ack.msgId, `FAILOVER-${ack.index}`)
                acked++
                if (killedAt > 0 && firstAfterKill === 0 && !ack.duplicate) firstAfterKill = Date.now()
                if (acked === 500) {
                  yield* server.kill(leader)
                  killedAt = Date.now()
                }
              })
            ),
            Effect.forkChild
          )
          yield* Fiber.join(fiber)
          assert.strictEqual(acked, count)
          const info = yield* eventually(jsm.streamInfo("FAILOVER"), (i) => i.state.messages === count)
          assert.strictEqual(info.state.messages, count, "every message stored, none twice")
          assert.isTrue(firstAfterKill - killedAt < 10_000, `resumed in ${firstAfterKill - killedAt} ms`)
          assert.notStrictEqual(info.cluster?.leader, undefined)
          assert.notStrictEqual(info.cluster?.leader, server.nodes[leader]?.name, "a new leader")
        }))
      yield* server.start(0).pipe(Effect.ignore)
    }).pipe(Effect.provide(NatsServer.layer({ cluster: 3 }))))

  it.live("during an election a publish is NoResponders (retryable) and a retried publish gets through", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      yield* onCluster("ELECTION", (leader) =>
        Effect.gen(function*() {
          const js = yield* JetStream.JetStream
          yield* js.publish("ELECTION.a", encoder.encode("before"))
          yield* server.kill(leader)
          // right after the kill nobody leads the stream: the first publish that is not answered says so
          const during = yield* js.publish("ELECTION.a", encoder.encode("during"), {
            msgId: "e-1",
            timeout: "1 second"
          })
            .pipe(Effect.flip, Effect.retry({ times: 20 }))
            .pipe(Effect.option, Effect.timeout("10 seconds"))
          // (when the election is over before a publish got no answer, there is nothing to check here)
          if (during._tag === "Some") {
            assert.include(["NoResponders", "Timeout"], during.value.reason._tag)
            assert.isTrue(during.value.isRetryable)
          }
          const ack = yield* js.publish("ELECTION.a", encoder.encode("during"), { msgId: "e-1", retry })
          assert.strictEqual(ack.stream, "ELECTION")
        }))
    }).pipe(Effect.provide(NatsServer.layer({ cluster: 3 }))))

  it.live("no stream for the subject is still NoStreamForSubject, at once and not retryable", () =>
    Effect.gen(function*() {
      const js = yield* JetStream.JetStream
      const started = Date.now()
      const error = yield* js.publish("nostream.here", encoder.encode("x"), { retry }).pipe(Effect.flip)
      assert.strictEqual(error.reason._tag, "NoStreamForSubject")
      assert.isFalse(error.isRetryable)
      assert.isTrue(Date.now() - started < 2000, "not retried")
      const failed = yield* js.publishAll(messages("nostream", 10), { retry }).pipe(Stream.runDrain, Effect.flip)
      assert.strictEqual(failed._tag, "PublishAllError")
      if (failed._tag === "PublishAllError") {
        assert.strictEqual(failed.index, 0)
        assert.strictEqual(failed.error.reason._tag, "NoStreamForSubject")
      }
    }).pipe(Effect.provide(servicesOn(0)), Effect.provide(NatsServer.layer({ cluster: 3 }))))

  it.live("the node the client is on is killed mid-publishAll: acks in flight fail fast and are retried", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      yield* onCluster("DROPPED", (_leader, client) =>
        Effect.gen(function*() {
          const js = yield* JetStream.JetStream
          const jsm = yield* JetStreamManager.JetStreamManager
          const nats = yield* NatsClient.NatsClient
          const before = yield* nats.server
          assert.strictEqual(before?.name, server.nodes[client]?.name, "on the node to be killed")
          assert.strictEqual(before?.connectUrls.length, 3, "the cluster's client URLs, for reconnects")
          const count = 3000
          let acked = 0
          let killedAt = 0
          let resumedAt = 0
          yield* js.publishAll(messages("DROPPED", count), { window: 128, retry, timeout: "30 seconds" }).pipe(
            Stream.runForEach(() =>
              Effect.gen(function*() {
                acked++
                if (killedAt > 0 && resumedAt === 0) resumedAt = Date.now()
                if (acked === 500) {
                  yield* server.kill(client)
                  killedAt = Date.now()
                }
              })
            )
          )
          assert.strictEqual(acked, count)
          // the ack timeout is 30 s: resuming sooner means the lost acks did not wait it out
          assert.isTrue(resumedAt - killedAt < 10_000, `resumed in ${resumedAt - killedAt} ms`)
          const info = yield* eventually(jsm.streamInfo("DROPPED"), (i) => i.state.messages === count)
          assert.strictEqual(info.state.messages, count)
          const after = yield* nats.server
          assert.notStrictEqual(after?.name, before?.name, "NatsClient.server names the node it is on now")
        }), true)
    }).pipe(Effect.provide(NatsServer.layer({ cluster: 3 }))))
})

describe("replies in flight when the connection drops (single node)", { timeout: 60_000 }, () => {
  it.live("a request and a JetStream publish waiting for replies fail at once with Disconnected (retryable)", () =>
    Effect.gen(function*() {
      const client = yield* NatsClient.NatsClient
      const js = yield* JetStream.JetStream
      // a subscriber that never answers: the request and the publish wait for their 30 s timeouts
      const silent = yield* client.subscribeScoped("silent.>")
      const received = yield* silent.pipe(Stream.take(2), Stream.runDrain, Effect.forkChild)
      const request = yield* client.request("silent.request", "x", { timeout: "30 seconds" }).pipe(
        Effect.flip,
        Effect.forkChild
      )
      const publish = yield* js.publish("silent.publish", encoder.encode("x"), { timeout: "30 seconds" }).pipe(
        Effect.flip,
        Effect.forkChild
      )
      yield* Fiber.join(received)
      const started = Date.now()
      yield* Effect.promise(() => client.connection.reconnect())
      const [requestError, publishError] = yield* Effect.all([Fiber.join(request), Fiber.join(publish)])
      assert.strictEqual(requestError.reason._tag, "Disconnected")
      assert.strictEqual(publishError.reason._tag, "Disconnected")
      assert.isTrue(publishError.isRetryable)
      assert.isTrue(Date.now() - started < 5_000, "failed at the drop, not at the timeout")
      // the connection is back: a request sent now is answered as usual
      yield* client.serve("echo.x", (msg) => Effect.succeed(msg.data))
      const reply = yield* client.request("echo.x", "y").pipe(
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 })
      )
      assert.strictEqual(new TextDecoder().decode(reply.data), "y")
    }).pipe(
      Effect.scoped,
      Effect.provide(servicesOn(0)),
      Effect.provide(NatsServer.layer({}))
    ))
})
