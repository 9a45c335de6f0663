/**
 * The pipeline of `publishAll` against a model: a fake request mux answers
 * each attempt of each message as a generated plan says (acked, or failed
 * in a retryable way a given number of times first; answers in any order),
 * and the properties say what the stream must emit. The fault tests run the
 * same pipeline against real servers (test/faults); here every interleaving
 * of acks and failures the window can see is reachable.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Msg } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Arbitrary, Cause, Context, Effect, Exit, Option, Schedule, Schema, Stream } from "effect"
import type { NatsCore } from "../../src/internal/core.ts"
import { disconnected, timeout } from "../../src/internal/errors.ts"
import * as Pipeline from "../../src/internal/jsPipeline.ts"
import type { Outcome, RequestMux } from "../../src/internal/requestMux.ts"
import * as Validation from "../../src/internal/validation.ts"
import type { OutgoingMessage, PublishedAck } from "../../src/services/JetStream.ts"

const encoder = new TextEncoder()

/** Per message: how many attempts fail first, and how (a lost connection, no leader, a timeout). */
interface Plan {
  readonly failures: number
  readonly kind: "Disconnected" | "NoLeader" | "Timeout"
  /** Whether the answer comes on a later tick (answers then arrive out of order). */
  readonly late: boolean
}

const plans = Arbitrary.array(
  Arbitrary.schema(Schema.Struct({
    failures: Schema.Literals([0, 0, 0, 1, 2]),
    kind: Schema.Literals(["Disconnected", "NoLeader", "Timeout"]),
    late: Schema.Boolean
  })),
  { minLength: 1, maxLength: 60 }
)

/** A mux whose answers follow the plans; it counts the attempts and what the stream stored. */
const fakeMux = (plan: ReadonlyArray<Plan>) => {
  // by input index (the payload): attempts, the sequence it was stored at, and the msgId it was sent with
  const attempts = new Map<number, number>()
  const stored = new Map<number, number>()
  const ids = new Map<number, string | undefined>()
  let seq = 0
  const mux: RequestMux = {
    refused: () => undefined,
    disconnected: () => undefined,
    send: (operation, subject, payload, headers, _timeoutMillis, done) => {
      // the lookup after "no responders": a stream captures the subject (it has no leader now)
      if (subject.endsWith(".STREAM.NAMES")) {
        done({ _tag: "Reply", msg: { data: encoder.encode(JSON.stringify({ streams: ["S"] })) } as Msg })
        return () => undefined
      }
      const index = Number(new TextDecoder().decode(payload as Uint8Array))
      const id = headers?.get("Nats-Msg-Id")
      // every attempt of a message carries the same msgId
      if (ids.has(index)) assert.strictEqual(id, ids.get(index))
      ids.set(index, id)
      const attempt = (attempts.get(index) ?? 0) + 1
      attempts.set(index, attempt)
      const p = plan[index] ?? { failures: 0, kind: "Timeout", late: false }
      const reply = (): Outcome => {
        if (attempt <= p.failures) {
          switch (p.kind) {
            case "Disconnected":
              return { _tag: "Failed", error: disconnected(operation, subject) }
            case "NoLeader":
              return { _tag: "NoResponders" }
            case "Timeout":
              return { _tag: "Failed", error: timeout(operation, "no ack", { subject }) }
          }
        }
        const first = stored.get(index)
        if (first === undefined) stored.set(index, ++seq)
        const ack = { stream: "S", seq: first ?? seq, ...(first === undefined ? {} : { duplicate: true }) }
        return { _tag: "Reply", msg: { data: encoder.encode(JSON.stringify(ack)) } as Msg }
      }
      if (p.late) setTimeout(() => done(reply()), attempt % 3)
      else queueMicrotask(() => done(reply()))
      return () => undefined
    }
  }
  return { mux, attempts, stored, ids }
}

const coreOf = (mux: RequestMux): NatsCore =>
  ({ requests: mux, validation: Validation.make(() => 1024 * 1024), jetstream: () => true }) as unknown as NatsCore

const run = (plan: ReadonlyArray<Plan>, window: number, retry: boolean) =>
  Effect.gen(function*() {
    const fake = fakeMux(plan)
    const messages: Array<OutgoingMessage> = plan.map((_, i) => ({ subject: "s", payload: encoder.encode(`${i}`) }))
    const acks: Array<PublishedAck> = []
    const exit = yield* Stream.transformPull(Stream.fromIterable(messages), (upstream, scope: Scope.Scope) =>
      Pipeline.make(upstream, scope, {
        context: Context.empty(),
        core: coreOf(fake.mux),
        apiPrefix: "$JS.API",
        capacity: window,
        timeoutMillis: 1000,
        retry: retry ? Schedule.spaced("1 millis") : undefined,
        failure: (failed) =>
          failed
      })).pipe(
        Stream.runForEach((ack) =>
          Effect.sync(() => acks.push(ack))
        ),
        Effect.exit
      )
    return { ...fake, acks, exit }
  })

describe("publishAll's pipeline against a model", () => {
  // live: the retry schedule sleeps on the real clock
  it.live.prop(
    "with retry: every message acked once, in input order, each ack naming its input; each stored once",
    [plans, Arbitrary.schema(Schema.Literals([1, 2, 7, 64]))],
    ([plan, window]) =>
      Effect.gen(function*() {
        const { acks, exit, ids, stored } = yield* run(plan, window, true)
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        assert.deepStrictEqual(acks.map((a) => a.index), plan.map((_, i) => i))
        // a message without a msgId got one: distinct, sent with every attempt, and named by its ack
        assert.strictEqual(new Set(acks.map((a) => a.msgId)).size, plan.length)
        for (const ack of acks) {
          assert.strictEqual(ack.msgId, ids.get(ack.index))
          assert.strictEqual(ack.seq, stored.get(ack.index), "the sequence it was stored at (once)")
        }
        assert.strictEqual(stored.size, plan.length)
      }),
    { arbitrary: { runs: 200 } }
  )

  it.effect.prop(
    "without retry: the acks of the messages before the first failure, then PublishAllError at it",
    [plans, Arbitrary.schema(Schema.Literals([1, 3, 64]))],
    ([plan, window]) =>
      Effect.gen(function*() {
        const { acks, attempts, exit } = yield* run(plan, window, false)
        const firstFailure = plan.findIndex((p) => p.failures > 0)
        if (firstFailure < 0) {
          assert.isTrue(Exit.isSuccess(exit), String(exit))
          assert.strictEqual(acks.length, plan.length)
          return
        }
        assert.isTrue(Exit.isFailure(exit))
        assert.deepStrictEqual(acks.map((a) => a.index), plan.slice(0, firstFailure).map((_, i) => i))
        const error = Exit.isFailure(exit)
          ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) as Pipeline.Failed | undefined
          : undefined
        assert.strictEqual(error?.index, firstFailure)
        assert.strictEqual(error?.error.isRetryable, true)
        // every ack it lists came after the failed message, in order, and was really acked
        const after = error?.later.map((a) => a.index) ?? []
        assert.deepStrictEqual(after, [...after].sort((a, b) => a - b))
        for (const index of after) {
          assert.isAbove(index, firstFailure)
          assert.strictEqual(plan[index]?.failures, 0)
        }
        // nothing is sent twice without retry
        for (const count of attempts.values()) assert.strictEqual(count, 1)
      }),
    { arbitrary: { runs: 200 } }
  )
})
