/**
 * Runs a typed handler over a JetStream consumer: bounded concurrency,
 * Schedule-driven redelivery, dead-letter, in-progress keep-alive and a
 * graceful shutdown that loses nothing.
 *
 * For every message:
 * - the payload is decoded by the codec; one that does not decode is poison
 *   and is dead-lettered at once (no retries);
 * - the handler runs (with `handlerTimeout` if set, sending `working` every
 *   `workingInterval` so the server does not redeliver it behind its back);
 * - success → `ack` (`ackAck` with `doubleAck`, waiting for the server);
 * - failure, defect or timeout → `decide` says what to do (default `retry`):
 *   `retry` naks with the delay the `retry` Schedule gives for this delivery
 *   count; when that schedule has ended, or the delivery count reached the
 *   consumer's `max_deliver`, the message is dead-lettered instead; `term`
 *   terminates it; `deadLetter` dead-letters it.
 * - dead-letter: the original payload and headers are published to
 *   `deadLetter.subject` through JetStream with headers stating the reason,
 *   the error, and the source stream, consumer, sequence, subject and
 *   delivery count; only when that publish is acknowledged is the original
 *   terminated. Without a dead-letter subject the message is terminated and
 *   the reason logged. (nats-server 2.9 drops a `+TERM` that carries a
 *   reason, so the reason travels in the dead-letter headers and the logs.)
 *
 * Concurrency `n` (default 1, in order): at most `n` handlers run at once;
 * the messages held un-acked in memory never exceed `n` plus the consumer's
 * prefetch (`prefetch`, default `max(2n, 16)`) plus its small stream buffer.
 *
 * Shutdown (the scope closes): intake stops first (no more pulls), in-flight
 * handlers get `gracePeriod` to finish and are acked as usual; those still
 * running after it are interrupted and nak'ed without delay; the connection
 * is flushed, so every ack and nak has reached the server when the scope has
 * closed; then the connection may drain. Prefetched messages never handed to a handler are
 * not acked and are redelivered after the consumer's ack wait.
 *
 * Every outcome is logged with the subject and stream sequence, and counted
 * in `Processor.messages` (attribute `outcome`: `acked`, `retried`,
 * `dead_lettered`, `termed`, `decode_failed`, `interrupted`) and
 * `Processor.inFlight`.
 *
 * @since 0.1.0
 */
import type { JsMsg } from "@nats-io/jetstream"
import { headers as makeHeaders } from "@nats-io/nats-core"
import type { Scope } from "effect"
import {
  Cause,
  Duration,
  Effect,
  Fiber,
  FiberSet,
  Layer,
  Metric,
  Option,
  Result,
  Schedule,
  Semaphore,
  Stream
} from "effect"
import { nthStep } from "../internal/scheduleStep.ts"
import * as Codec from "../schemas/Codec.ts"
import * as JsEnvelope from "../schemas/JsEnvelope.ts"
import type { NatsError } from "../schemas/NatsError.ts"
import type { CodecInput, ConsumerShape } from "./Consumer.ts"
import { JetStream } from "./JetStream.ts"
import { NatsClient } from "./NatsClient.ts"

/**
 * Why a handler did not succeed.
 *
 * @category models
 * @since 0.1.0
 */
export type Failure<E> =
  | { readonly _tag: "Failed"; readonly error: E }
  | { readonly _tag: "Died"; readonly defect: unknown }
  | { readonly _tag: "TimedOut"; readonly after: Duration.Duration }

/**
 * What to do with a message whose handler did not succeed.
 *
 * @category models
 * @since 0.1.0
 */
export type Decision = "retry" | "deadLetter" | "term"

/**
 * Options of `make` / `layer`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProcessorOptions<A, E, R> {
  readonly consumer: ConsumerShape
  /** Payload codec, or a Schema (JSON). */
  readonly codec: CodecInput<A>
  readonly handler: (value: A, envelope: JsEnvelope.JsEnvelope<A>) => Effect.Effect<void, E, R>
  /** Handlers running at once. Default 1 (messages handled in order). */
  readonly concurrency?: number | undefined
  /** Messages the consumer pulls ahead. Default `max(2 × concurrency, 16)`. */
  readonly prefetch?: number | undefined
  /**
   * Redelivery delays: the delay before delivery `n + 1` is this schedule's
   * `n`-th delay (its input is the failure). When it has ended, the message
   * is dead-lettered. Default: exponential from 1 s, jittered, capped at
   * 1 minute, 5 retries.
   */
  readonly retry?: Schedule.Schedule<unknown, Failure<E>> | undefined
  /** Per failure: retry (default), dead-letter or terminate. */
  readonly decide?: ((failure: Failure<E>, envelope: JsEnvelope.JsEnvelope<A>) => Decision) | undefined
  /** Where poison and exhausted messages go (a subject some stream captures). */
  readonly deadLetter?: { readonly subject: string } | undefined
  /** A handler running longer fails with `TimedOut`. */
  readonly handlerTimeout?: Duration.Input | undefined
  /** `ackAck` instead of `ack`: wait for the server to confirm. */
  readonly doubleAck?: boolean | undefined
  /** Time given to in-flight handlers when the scope closes. Default 30 seconds. */
  readonly gracePeriod?: Duration.Input | undefined
  /** How often a running handler sends `working`. Default: half the consumer's ack wait. */
  readonly workingInterval?: Duration.Input | undefined
}

/**
 * Messages by outcome (attribute `outcome`).
 *
 * @category metrics
 * @since 0.1.0
 */
export const messages = Metric.counter("effect_nats_processor_messages", {
  description: "JetStream messages handled by effect-nats processors, by outcome",
  incremental: true
})

/**
 * Handlers running now.
 *
 * @category metrics
 * @since 0.1.0
 */
export const inFlight = Metric.gauge("effect_nats_processor_in_flight", {
  description: "Handlers of effect-nats processors running now"
})

const outcome = (name: string) => Metric.withAttributes(messages, { outcome: name })
const acked = outcome("acked")
const retried = outcome("retried")
const deadLettered = outcome("dead_lettered")
const termed = outcome("termed")
const decodeFailed = outcome("decode_failed")
const interrupted = outcome("interrupted")

/**
 * The default redelivery schedule: exponential from 1 s, jittered, capped at
 * 1 minute, 5 retries.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("1 second").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.minutes(1)))),
  Schedule.jittered,
  Schedule.upTo({ times: 5 })
)

/**
 * Headers set on a dead-lettered message.
 *
 * @category constants
 * @since 0.1.0
 */
export const DeadLetterHeaders = {
  reason: "Nats-Dlq-Reason",
  error: "Nats-Dlq-Error",
  stream: "Nats-Dlq-Stream",
  consumer: "Nats-Dlq-Consumer",
  sequence: "Nats-Dlq-Sequence",
  subject: "Nats-Dlq-Subject",
  deliveryCount: "Nats-Dlq-Delivery-Count"
} as const

const describe = <E>(failure: Failure<E>): string => {
  switch (failure._tag) {
    case "Failed":
      return oneLine(failure.error)
    case "Died":
      return `defect: ${oneLine(failure.defect)}`
    case "TimedOut":
      return `timed out after ${Duration.format(failure.after)}`
  }
}

const oneLine = (u: unknown): string => {
  const text = u instanceof Error
    ? `${u.name}: ${u.message}`
    : typeof u === "object" && u !== null && "_tag" in u
    ? `${String(u._tag)}${"message" in u && typeof u.message === "string" ? `: ${u.message}` : ""}`
    : String(u)
  return text.replace(/[\r\n]+/g, " ").slice(0, 1024)
}

/**
 * Starts processing in the current scope and returns at once; the scope's
 * close runs the graceful shutdown. Requires `JetStream` for dead-lettering
 * and `NatsClient` to flush the acks on shutdown.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <A, E, R>(
  options: ProcessorOptions<A, E, R>
): Effect.Effect<Fiber.Fiber<void, NatsError>, NatsError, JetStream | NatsClient | R | Scope.Scope> =>
  Effect.gen(function*() {
    const js = yield* JetStream
    const client = yield* NatsClient
    const { consumer } = options
    const codec = Codec.fromInput(options.codec)
    const concurrency = Math.max(1, options.concurrency ?? 1)
    const info = yield* consumer.info
    const ackWaitMillis = Math.max(1, Math.floor((info.config.ack_wait ?? 30_000_000_000) / 1_000_000))
    const maxDeliver = info.config.max_deliver ?? -1
    const workingEvery = options.workingInterval === undefined
      ? Duration.millis(Math.max(50, Math.floor(ackWaitMillis / 2)))
      : Duration.fromInputUnsafe(options.workingInterval)
    const retry: Schedule.Schedule<unknown, Failure<E>> = options.retry ?? defaultRetry
    const timeout = options.handlerTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.handlerTimeout)

    const where = (msg: JsMsg) => `${msg.subject} (stream ${msg.info.stream} seq ${msg.info.streamSequence})`

    const deadLetter = (msg: JsMsg, reason: string, error: string) =>
      Effect.gen(function*() {
        if (options.deadLetter === undefined) {
          yield* Effect.logWarning(`nats: terminated ${where(msg)}: ${reason}: ${error}`)
          yield* JsEnvelope.make(msg.data, msg).term(`${reason}: ${error}`)
          yield* Metric.update(termed, 1)
          return
        }
        const h = makeHeaders()
        if (msg.headers !== undefined) {
          for (const [key, values] of msg.headers) for (const value of values) h.append(key, value)
        }
        h.set(DeadLetterHeaders.reason, reason)
        h.set(DeadLetterHeaders.error, error)
        h.set(DeadLetterHeaders.stream, msg.info.stream)
        h.set(DeadLetterHeaders.consumer, msg.info.consumer)
        h.set(DeadLetterHeaders.sequence, String(msg.info.streamSequence))
        h.set(DeadLetterHeaders.subject, msg.subject)
        h.set(DeadLetterHeaders.deliveryCount, String(msg.info.deliveryCount))
        // The msgId makes a dead-letter publish repeated after a crash a duplicate.
        yield* js.publish(options.deadLetter.subject, msg.data, {
          headers: h,
          msgId: `dlq:${msg.info.stream}:${msg.info.streamSequence}`
        })
        yield* JsEnvelope.make(msg.data, msg).term(`${reason}: ${error}`)
        yield* Metric.update(deadLettered, 1)
        yield* Effect.logWarning(
          `nats: dead-lettered ${where(msg)} to ${options.deadLetter.subject}: ${reason}: ${error}`
        )
      }).pipe(
        // The dead-letter publish failed: nothing is lost, try again later.
        Effect.catch((cause) =>
          Effect.logError(`nats: could not dead-letter ${where(msg)}; nak'ed to try again`, cause).pipe(
            Effect.andThen(Effect.ignore(JsEnvelope.make(msg.data, msg).nak(Duration.millis(ackWaitMillis))))
          )
        )
      )

    const onFailure = (envelope: JsEnvelope.JsEnvelope<A>, failure: Failure<E>) => {
      const decision = options.decide?.(failure, envelope) ?? "retry"
      const error = describe(failure)
      const msg = envelope.msg
      if (decision === "term") {
        return Effect.logWarning(`nats: terminated ${where(msg)}: ${error}`).pipe(
          Effect.andThen(envelope.term(error)),
          Effect.andThen(Metric.update(termed, 1))
        )
      }
      if (decision === "deadLetter") return deadLetter(msg, "rejected", error)
      const count = envelope.deliveryCount
      if (maxDeliver > 0 && count >= maxDeliver) return deadLetter(msg, "max_deliver", error)
      const step = nthStep(retry, count, failure)
      if (step._tag === "Done") return deadLetter(msg, "retries_exhausted", error)
      const delay = step._tag === "Delay" ? step.millis : ackWaitMillis
      return Effect.logInfo(`nats: retrying ${where(msg)} (delivery ${count}) in ${delay} ms: ${error}`).pipe(
        Effect.andThen(envelope.nak(Duration.millis(delay))),
        Effect.andThen(Metric.update(retried, 1))
      )
    }

    const keepAlive = (envelope: JsEnvelope.JsEnvelope<A>) =>
      envelope.working.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(workingEvery)), Effect.delay(workingEvery))

    const runHandler = (envelope: JsEnvelope.JsEnvelope<A>): Effect.Effect<Failure<E> | undefined, never, R> => {
      const handled = Effect.suspend(() => options.handler(envelope.value, envelope))
      const bounded = timeout === undefined
        ? Effect.map(handled, () => undefined)
        : handled.pipe(
          Effect.map(() => undefined),
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () => Effect.succeed<Failure<E>>({ _tag: "TimedOut", after: timeout })
          })
        )
      return bounded.pipe(
        Effect.raceFirst(Effect.andThen(keepAlive(envelope), Effect.never)),
        Effect.catchCause((cause): Effect.Effect<Failure<E>> => {
          if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause) as never
          const failure = Cause.findErrorOption(cause)
          return Effect.succeed(
            Option.isSome(failure)
              ? { _tag: "Failed", error: failure.value }
              : { _tag: "Died", defect: Cause.squash(cause) }
          )
        })
      )
    }

    const process = (msg: JsMsg): Effect.Effect<void, never, R> => {
      const decoded = codec.decode(msg.data)
      if (Result.isFailure(decoded)) {
        return Metric.update(decodeFailed, 1).pipe(
          Effect.andThen(deadLetter(msg, "decode", Codec.withSubject(decoded.failure, msg.subject).message))
        )
      }
      const envelope = JsEnvelope.make(decoded.success, msg)
      return runHandler(envelope).pipe(
        Effect.flatMap((failure) =>
          failure === undefined
            ? (options.doubleAck === true ? envelope.ackAck() : envelope.ack).pipe(
              Effect.andThen(Metric.update(acked, 1))
            )
            : onFailure(envelope, failure)
        ),
        Effect.catch((error) => Effect.logError(`nats: could not settle ${where(msg)}; it will be redelivered`, error)),
        Effect.onInterrupt(() =>
          Effect.logWarning(`nats: interrupted ${where(msg)}; nak'ed for redelivery`).pipe(
            Effect.andThen(Effect.ignore(envelope.nak())),
            Effect.andThen(Metric.update(interrupted, 1))
          )
        ),
        Effect.annotateLogs({ subject: msg.subject, sequence: msg.info.streamSequence })
      )
    }

    const prefetch = options.prefetch ?? Math.max(2 * concurrency, 16)
    const permits = yield* Semaphore.make(concurrency)
    // Scoped: its release interrupts handlers still running after the grace
    // period (they nak themselves on interruption).
    const running = yield* FiberSet.make<void, never>()
    let active = 0
    const track = (delta: number) =>
      Effect.suspend(() => {
        active += delta
        return Metric.update(inFlight, active)
      })
    const intake = consumer.consume({ maxMessages: prefetch, bufferSize: concurrency }).pipe(
      Stream.runForEach((envelope) =>
        Semaphore.take(permits, 1).pipe(
          Effect.andThen(track(1)),
          Effect.andThen(FiberSet.run(
            running,
            process(envelope.msg).pipe(Effect.ensuring(Effect.andThen(track(-1), Semaphore.release(permits, 1))))
          ))
        )
      ),
      Effect.tapCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.void
          : Effect.logError(`nats: processor on ${consumer.stream} stopped`, cause)
      )
    )
    const fiber = yield* Effect.forkDetach(intake)
    const grace = options.gracePeriod ?? "30 seconds"
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // 1. stop pulling; 2. let in-flight handlers finish (and settle) within
        // the grace period; 3. the FiberSet's release interrupts the rest.
        yield* Fiber.interrupt(fiber)
        const finished = yield* FiberSet.awaitEmpty(running).pipe(Effect.timeoutOption(grace))
        if (Option.isNone(finished)) {
          yield* Effect.logWarning(
            `nats: processor on ${consumer.stream}: ${active} handler(s) still running after the grace period; interrupting`
          )
          yield* FiberSet.clear(running)
        }
        // 4. the acks (and naks) are on the wire before the scope is done.
        yield* Effect.ignore(client.flush)
      })
    )
    return fiber
  })

/**
 * The processor as a Layer: runs for the life of the layer; its release runs
 * the graceful shutdown.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <A, E, R>(
  options: ProcessorOptions<A, E, R>
): Layer.Layer<never, NatsError, JetStream | NatsClient | R> => Layer.effectDiscard(make(options))
