/**
 * Effect's `PersistedQueueStore` (from `effect/persistence`) on JetStream:
 * `PersistedQueue.make`, and what builds on it (`effect/workflow`'s
 * `DurableQueue`), run on NATS with one Layer, shared by every instance of an
 * application, surviving restarts of the application and of the server.
 *
 * **Design.** Elements are messages of one work-queue stream (a subject per
 * queue name, a durable pull consumer per queue); each element also has a
 * record in a Key-Value bucket (state, attempts, the sequence of the message
 * that carries it, when it last changed), written by compare-and-set:
 *
 * - `offer` publishes the element, then creates its record: a record that
 *   exists already (an id offered before, until `cleanup` removes it) makes
 *   the offer a no-op, and the message just published is deleted. JetStream's
 *   own deduplication lasts only its window; the record lasts until cleanup.
 * - `take` pulls a message and claims its record (`processing`, one more
 *   attempt). A message its record does not name (a duplicate), or one of an
 *   element already completed or failed, is acked and skipped; a message
 *   whose record is missing (the offer stopped between its two writes) is
 *   adopted. While the element is held, the message is kept alive
 *   (`working`), so it is never redelivered to another taker.
 * - When the take's Scope closes: success completes the record, then acks;
 *   a failure makes it pending again and naks with the retry schedule's delay
 *   (the server redelivers it then); an interruption gives the attempt back
 *   and naks at once; the last allowed attempt, or an element that did not
 *   decode, fails it and terminates the message. The record is written
 *   before the message is settled, so a crash in between only causes a
 *   redelivery that the record then explains.
 * - A holder that died (no `working` within `ackWait`): the server
 *   redelivers, the record says `processing`, and the attempt it used stays
 *   counted (on the last one, the element fails).
 * - `cleanup` removes the records of completed elements older than
 *   `timeToLive` (failed ones only with `failedTimeToLive`); pending and
 *   processing elements keep theirs.
 *
 * Delays (`offer` with `delay`, retries) are the server's: a message is
 * nakked with the time left, so they run on real time.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Exit,
  Layer,
  Option,
  Predicate,
  RcMap,
  Result,
  Schedule,
  Schema,
  Scope,
  Stream
} from "effect"
import { PersistedQueueError, PersistedQueueStore } from "effect/persistence/PersistedQueue"
import * as Token from "../internal/tokenEncoding.ts"
import * as Validation from "../internal/validation.ts"
import * as NatsError from "../schemas/NatsError.ts"
import * as Consumer from "../services/Consumer.ts"
import * as JetStream from "../services/JetStream.ts"
import * as JetStreamManager from "../services/JetStreamManager.ts"
import type { JsEnvelope } from "../services/JsEnvelope.ts"
import * as KeyValue from "../services/KeyValue.ts"
import type { NatsClient } from "../services/NatsClient.ts"

/**
 * Options of `makeStore` and `layerStore`.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoreOptions {
  /** The work-queue stream of the elements. Default `"EFFECT_QUEUE"`. */
  readonly stream?: string | undefined
  /** Its subjects: `<prefix>.<queue name>`. Default `"effect.queue"`. */
  readonly subjectPrefix?: string | undefined
  /** The Key-Value bucket of the records. Default `"effect-queue"`. */
  readonly bucket?: string | undefined
  /** Storage of both. Default `"file"`. */
  readonly storage?: "file" | "memory" | undefined
  /** Replicas of both (on a cluster). Default 1. */
  readonly replicas?: number | undefined
  /**
   * How long a taken element stays with its taker without news: it is kept
   * alive (`working`) every third of it while the taker's Scope is open, so
   * only a taker that died loses it. Default 30 s.
   */
  readonly ackWait?: Duration.Input | undefined
  /** How long each pull waits for an element before pulling again. Default 5 s, at least 1 s. */
  readonly pollInterval?: Duration.Input | undefined
}

const QueueRecord = Schema.Struct({
  state: Schema.Literals(["pending", "processing", "completed", "failed"]),
  attempts: Schema.Int,
  /** The stream sequence of the message that carries the element. */
  sequence: Schema.Int,
  /** When the state last changed (`Clock` millis): what `cleanup` compares. */
  changedAt: Schema.Number,
  lastFailure: Schema.optional(Schema.String)
})
type QueueRecord = typeof QueueRecord.Type

const Body = Schema.fromJsonString(Schema.Struct({
  id: Schema.String,
  element: Schema.Unknown,
  /** `Clock` millis before which the element is not handed out. */
  visibleAt: Schema.optional(Schema.Number)
}))
const decodeBody = Schema.decodeUnknownResult(Body)
const utf8 = new TextDecoder()

type Records = KeyValue.KeyValueShape<QueueRecord>

/** An element claimed by a take: what settling it needs. */
interface Claim {
  readonly key: string
  readonly id: string
  readonly element: unknown
  readonly attempts: number
  readonly revision: number
  readonly sequence: number
  readonly msg: JsEnvelope<Uint8Array>
}

const failure = (message: string) => (cause: unknown) => new PersistedQueueError({ message, cause })

/** The tag of `PersistedQueue`'s dead letter (not exported): an element that did not decode. */
const isDeadLetter = <E>(cause: Cause.Cause<E>): boolean =>
  cause.reasons.some((r) =>
    Cause.isFailReason(r) && Predicate.isTagged(r.error, "~effect/persistence/PersistedQueue/DeadLetter")
  )

/** Record writes retried on retryable failures (a few times: a settle cannot wait forever). */
const retried = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.retry(self, {
    schedule: Schedule.exponential("100 millis"),
    times: 5,
    while: (e) => NatsError.isNatsError(e) && e.isRetryable
  })

const isConflict = (e: unknown): boolean =>
  NatsError.isNatsError(e) && (e.reason._tag === "WrongRevision" || e.reason._tag === "KeyExists")

/**
 * The record of the message's element claimed for one more attempt;
 * `undefined` when the message is not to be handed out (it was settled here).
 */
const claim = (records: Records, key: string, msg: JsEnvelope<Uint8Array>, maxAttempts: number) =>
  Effect.gen(function*() {
    const sequence = msg.streamSequence
    for (let tries = 0; tries < 16; tries++) {
      const now = yield* Clock.currentTimeMillis
      const current = yield* records.get(key)
      if (Option.isNone(current)) {
        // the offer stopped between its two writes: the message is adopted
        const adopted = { state: "processing", attempts: 1, sequence, changedAt: now } as const
        const created = yield* Effect.result(records.create(key, adopted))
        if (Result.isSuccess(created)) return { attempts: 1, revision: created.success }
        if (isConflict(created.failure)) continue
        return yield* created.failure
      }
      const { revision, value: record } = current.value
      if (record.sequence !== sequence || record.state === "completed" || record.state === "failed") {
        // a duplicate of an element another message carries, or one settled already
        yield* msg.ack
        return undefined
      }
      if (record.attempts >= maxAttempts) {
        const lastFailure = record.state === "processing"
          ? "its taker was lost on the last attempt"
          : record.lastFailure
        yield* retried(records.update(key, failed(record, now, lastFailure), revision))
        yield* msg.term("attempts exhausted")
        return undefined
      }
      const next = { ...record, state: "processing", attempts: record.attempts + 1, changedAt: now } as const
      const written = yield* Effect.result(records.update(key, next, revision))
      if (Result.isSuccess(written)) return { attempts: next.attempts, revision: written.success }
      if (!isConflict(written.failure)) return yield* written.failure
    }
    // the record kept changing under us: another taker has it
    yield* msg.nak()
    return undefined
  })

const failed = (record: QueueRecord, now: number, lastFailure: string | undefined): QueueRecord => ({
  ...record,
  state: "failed",
  changedAt: now,
  ...(lastFailure === undefined ? {} : { lastFailure: lastFailure.slice(0, 4096) })
})

/** What the end of a take does to its element: the record first, then the message. */
const settle = (
  records: Records,
  held: Claim,
  exit: Exit.Exit<unknown, unknown>,
  options: { readonly maxAttempts: number; readonly retryDelay: (attempts: number) => Effect.Effect<Duration.Duration> }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const base = { ...holding(held), changedAt: now }
    const write = (record: QueueRecord) => retried(records.update(held.key, record, held.revision))
    if (Exit.isSuccess(exit)) {
      yield* write({ ...base, state: "completed" })
      return yield* held.msg.ack
    }
    const cause = exit.cause
    if (isDeadLetter(cause) || (!Cause.hasInterruptsOnly(cause) && held.attempts >= options.maxAttempts)) {
      yield* write(failed(base, now, Cause.pretty(cause)))
      return yield* held.msg.term(isDeadLetter(cause) ? "the element did not decode" : "attempts exhausted")
    }
    if (Cause.hasInterruptsOnly(cause)) {
      // an interrupted attempt is given back
      yield* write({ ...base, state: "pending", attempts: held.attempts - 1 })
      return yield* held.msg.nak()
    }
    const delay = yield* options.retryDelay(held.attempts)
    yield* write({ ...base, state: "pending", lastFailure: Cause.pretty(cause).slice(0, 4096) })
    return yield* held.msg.nak(delay)
  }).pipe(
    Effect.catch((error) =>
      // the record says who holds the element: a lost write means a redelivery the record explains
      Effect.logWarning(`nats: could not settle element ${held.id} of ${held.key}: ${error.message}`)
    )
  )

const holding = (held: Claim): QueueRecord => ({
  state: "processing",
  attempts: held.attempts,
  sequence: held.sequence,
  changedAt: 0
})

/**
 * The store, on the `NatsClient`'s connection: the stream, the bucket and
 * (for each queue, when first taken from) the consumer are created when
 * missing.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeStore = Effect.fn("NatsPersistedQueue.makeStore")(function*(options?: StoreOptions) {
  const operation = "NatsPersistedQueue.makeStore"
  const invalid = Validation.durations(operation, { ackWait: options?.ackWait }, "1 second") ??
    Validation.durations(operation, { pollInterval: options?.pollInterval }, "1 second")
  if (invalid !== undefined) return yield* invalid
  const stream = options?.stream ?? "EFFECT_QUEUE"
  const prefix = options?.subjectPrefix ?? "effect.queue"
  const storage = options?.storage ?? "file"
  const replicas = options?.replicas ?? 1
  const ackWait = Duration.fromInputUnsafe(options?.ackWait ?? "30 seconds")
  const pollInterval = options?.pollInterval ?? "5 seconds"
  const jsm = yield* JetStreamManager.make()
  const js = yield* JetStream.make()
  yield* jsm.createOrUpdateStream({
    name: stream,
    subjects: [`${prefix}.*`],
    retention: "workqueue",
    storage,
    replicas
  })
  const records: Records = yield* KeyValue.make({
    bucket: options?.bucket ?? "effect-queue",
    codec: QueueRecord,
    config: { history: 1, storage, replicas }
  })
  const subjectOf = (name: string) => `${prefix}.${Token.encode(name)}`
  const keyOf = (name: string, id: string) => `${Token.encode(name)}.${Token.encode(id)}`
  const consumers = yield* RcMap.make({
    lookup: (name: string) =>
      Consumer.make({
        stream,
        config: {
          durable: `q_${Token.encode(name)}`,
          filterSubject: subjectOf(name),
          ackPolicy: "explicit",
          ackWait,
          maxDeliver: -1,
          maxAckPending: -1
        }
      }).pipe(Effect.provideService(JetStreamManager.JetStreamManager, jsm)),
    idleTimeToLive: "1 minute"
  })

  const offer: PersistedQueueStore["Service"]["offer"] = ({ delay, element, id, name }) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const visibleAt = delay === undefined ? undefined : now + Duration.toMillis(delay)
      const body = JSON.stringify({ id, element, ...(visibleAt === undefined ? {} : { visibleAt }) })
      const ack = yield* js.publish(subjectOf(name), body, { msgId: crypto.randomUUID() })
      const key = keyOf(name, id)
      const created = yield* Effect.result(
        records.create(key, { state: "pending", attempts: 0, sequence: ack.seq, changedAt: now })
      )
      if (Result.isSuccess(created)) return
      if (!isConflict(created.failure)) return yield* created.failure
      // offered before: unless a taker adopted this very message already, it is a duplicate
      const current = yield* records.get(key)
      if (Option.isSome(current) && current.value.value.sequence === ack.seq) return
      yield* Effect.ignore(Effect.tryPromise(() => jsm.manager.streams.deleteMessage(stream, ack.seq, false)))
    }).pipe(Effect.mapError(failure(`Failed to offer ${JSON.stringify(id)} to queue ${JSON.stringify(name)}`)))

  const take: PersistedQueueStore["Service"]["take"] = ({ maxAttempts, name, retryDelay }) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const consumer = yield* RcMap.get(consumers, name)
      while (true) {
        const held = yield* Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(restore(consumer.next({ maxWait: pollInterval })), (next) =>
            Option.isNone(next)
              ? Effect.succeed(undefined)
              : hold(next.value, name, scope, { maxAttempts, retryDelay }))
        )
        if (held !== undefined) return { id: held.id, attempts: held.attempts, element: held.element }
      }
    }).pipe(Effect.mapError(failure(`Failed to take from queue ${JSON.stringify(name)}`)))

  /** Claims the message's element and binds its settlement to the take's Scope. */
  const hold = (
    msg: JsEnvelope<Uint8Array>,
    name: string,
    scope: Scope.Scope,
    options: Parameters<typeof settle>[3]
  ) =>
    Effect.gen(function*() {
      const body = decodeBody(utf8.decode(msg.value))
      if (Result.isFailure(body)) {
        yield* Effect.logWarning(`nats: terminated message ${msg.streamSequence} of ${stream}: not a queue element`)
        return yield* Effect.as(msg.term("not a queue element"), undefined)
      }
      const { element, id, visibleAt } = body.success
      const now = yield* Clock.currentTimeMillis
      if (visibleAt !== undefined && visibleAt > now) {
        return yield* Effect.as(msg.nak(Duration.millis(visibleAt - now)), undefined)
      }
      const key = keyOf(name, id)
      const claimed = yield* claim(records, key, msg, options.maxAttempts)
      if (claimed === undefined) return undefined
      const held: Claim = { key, id, element, msg, sequence: msg.streamSequence, ...claimed }
      yield* Effect.forkIn(
        Effect.repeat(Effect.ignore(msg.working), Schedule.spaced(Duration.divideUnsafe(ackWait, 3))),
        scope
      )
      yield* Scope.addFinalizerExit(scope, (exit) => settle(records, held, exit, options))
      return held
    })

  const cleanup: PersistedQueueStore["Service"]["cleanup"] = ({ failedTimeToLive, timeToLive }) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const expired = (record: QueueRecord) =>
        record.state === "completed"
          ? record.changedAt <= now - Duration.toMillis(timeToLive)
          : record.state === "failed" && failedTimeToLive !== undefined &&
            record.changedAt <= now - Duration.toMillis(failedTimeToLive)
      yield* records.keys().pipe(
        Stream.mapEffect((key) => Effect.map(records.get(key), (entry) => [key, entry] as const), { concurrency: 16 }),
        Stream.filter(([, entry]) => Option.isSome(entry) && expired(entry.value.value)),
        Stream.runForEach(([key]) => records.delete(key))
      )
      yield* records.purgeDeletes()
    }).pipe(Effect.mapError(failure("Failed to clean up the queues' records")))

  return PersistedQueueStore.of({ offer, take, cleanup })
})

/**
 * Effect's `PersistedQueueStore` service on JetStream.
 *
 * @example
 * ```ts
 * import { PersistedQueue } from "effect/persistence"
 * const Queues = PersistedQueue.layer.pipe(Layer.provide(NatsPersistedQueue.layerStore()))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStore = (options?: StoreOptions): Layer.Layer<PersistedQueueStore, NatsError.NatsError, NatsClient> =>
  Layer.effect(PersistedQueueStore, makeStore(options))
