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
 * Concurrency `n` (default 1, in order): `n` worker fibers take the
 * received messages in turn, so at most `n` handlers run at once; a worker
 * handles the messages at hand one after the other (no fiber per message),
 * and the acks of a burst leave in one socket write. Messages are pulled
 * `prefetch` at a time (default `max(2n, 100)`); what is received and not yet
 * settled is bounded by the consumer's `max_ack_pending` (server default
 * 1,000; set it on the consumer to share work evenly between several
 * processes). Every message the processor holds, from the moment it is
 * received (waiting for a worker, handled, being settled), gets `working`
 * every `workingInterval`, so a message waiting behind slow handlers is not
 * redelivered behind the processor's back.
 *
 * Shutdown (the scope closes): intake stops first (no more pulls) and no
 * worker starts another message; in-flight handlers get `gracePeriod` to
 * finish and are acked as usual; those still running after it are
 * interrupted and nak'ed without delay; received messages no handler started
 * are nak'ed without delay too; the connection is flushed, so every ack and
 * nak has reached the server when the scope has closed; then the connection
 * may drain.
 *
 * Every outcome but a plain ack is logged with the subject and stream
 * sequence (acks are counted only: a log line per acked message would cost
 * more than the processing), and every outcome is counted
 * in `Processor.messages` (attribute `outcome`: `acked`, `retried`,
 * `dead_lettered`, `termed`, `decode_failed`, `interrupted`) and
 * `Processor.inFlight`. Acks and the in-flight gauge are reported in batches:
 * whenever a worker runs out of messages and every 256 messages.
 *
 * @since 0.1.0
 */
import type { JsMsg } from "@nats-io/jetstream"
import { headers as makeHeaders } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Queue, Result, Schedule, Stream } from "effect"
import { nthStep } from "../internal/scheduleStep.ts"
import * as Codec from "../schemas/Codec.ts"
import { InvalidArgument, NatsError } from "../schemas/NatsError.ts"
import type { CodecInput, ConsumerShape } from "./Consumer.ts"
import { JetStream } from "./JetStream.ts"
import * as JsEnvelope from "./JsEnvelope.ts"
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
  /**
   * Messages asked for in one pull. Default `max(2 × concurrency, 100)`.
   * Received messages are kept alive while they wait, so a large value is
   * safe with slow handlers; to bound what one process takes from a shared
   * consumer, set the consumer's `max_ack_pending`.
   */
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
  /** How often a message being handled sends `working`. Default: a third of the consumer's ack wait. */
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

type Outcome = "acked" | "retried" | "dead_lettered" | "termed" | "decode_failed" | "interrupted"

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
  let text: string
  if (typeof u === "object" && u !== null && "_tag" in u) {
    const { _tag, message, ...fields } = u as { readonly _tag: unknown; readonly message?: unknown }
    const detail = typeof message === "string" && message.length > 0 ? message : safeJson(fields)
    text = `${String(_tag)}${detail === "{}" ? "" : `: ${detail}`}`
  } else {
    text = u instanceof Error ? `${u.name}: ${u.message}` : String(u)
  }
  return text.replace(/[\r\n]+/g, " ").slice(0, 1024)
}

const safeJson = (u: unknown): string => {
  try {
    return JSON.stringify(u) ?? ""
  } catch {
    return String(u)
  }
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
    const invalid = (message: string) =>
      new NatsError({ reason: new InvalidArgument({ operation: "Processor.make", message }) })
    if (consumer.kind === "ordered" || info.config.ack_policy !== "explicit") {
      return yield* invalid(
        `a processor needs a consumer with explicit acks (consumer ${info.name} has ack policy ${info.config.ack_policy})`
      )
    }
    if (options.deadLetter !== undefined) {
      // The dead-letter subject must be captured, and not by the stream being
      // processed (a dead letter would come back as a new message, forever).
      const subject = options.deadLetter.subject
      const captured = yield* Effect.tryPromise({
        try: () => js.client.jetstreamManager().then((jsm) => jsm.streams.find(subject)),
        catch: () => invalid(`no stream captures the dead-letter subject ${subject}`)
      })
      if (captured === consumer.stream) {
        return yield* invalid(`the dead-letter subject ${subject} is captured by the processed stream ${captured}`)
      }
    }
    // one counter per outcome, built once (not per message)
    const counters = Object.fromEntries(
      (["acked", "retried", "dead_lettered", "termed", "decode_failed", "interrupted"] as const).map((name) => [
        name,
        Metric.withAttributes(messages, { outcome: name, stream: consumer.stream, consumer: info.name })
      ])
    ) as Record<Outcome, Metric.Metric<number, unknown>>
    const outcomes = Object.fromEntries(
      Object.entries(counters).map(([name, counter]) => [name, Metric.update(counter, 1)])
    ) as Record<Outcome, Effect.Effect<void>>
    const counted = (name: Outcome) => outcomes[name]
    const ackWaitMillis = Math.max(1, Math.floor((info.config.ack_wait ?? 30_000_000_000) / 1_000_000))
    const maxDeliver = info.config.max_deliver ?? -1
    const workingEvery = options.workingInterval === undefined
      ? Duration.millis(Math.max(50, Math.floor(ackWaitMillis / 3)))
      : Duration.fromInputUnsafe(options.workingInterval)
    const retry: Schedule.Schedule<unknown, Failure<E>> = options.retry ?? defaultRetry
    const timeout = options.handlerTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.handlerTimeout)

    // A dead-letter publish is retried a few times before giving up on it for this delivery.
    const deadLetterRetry = Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 4 }))

    const where = (msg: JsMsg) => `${msg.subject} (stream ${msg.info.stream} seq ${msg.info.streamSequence})`

    const deadLetter = (msg: JsMsg, reason: string, cause: string, outcome: Outcome = "dead_lettered") =>
      Effect.gen(function*() {
        // one line: it travels in a header
        const error = oneLine(cause)
        if (options.deadLetter === undefined) {
          yield* Effect.logWarning(`nats: terminated ${where(msg)}: ${reason}: ${error}`)
          yield* JsEnvelope.make(msg.data, msg).term(`${reason}: ${error}`)
          yield* counted(outcome === "dead_lettered" ? "termed" : outcome)
          return
        }
        const h = makeHeaders()
        if (msg.headers !== undefined) {
          // JetStream control headers (Nats-Expected-*, Nats-Rollup, Nats-Msg-Id...)
          // would act on the dead-letter stream: they are not copied.
          for (const [key, values] of msg.headers) {
            if (key.toLowerCase().startsWith("nats-")) continue
            for (const value of values) h.append(key, value)
          }
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
          msgId: `dlq:${msg.info.stream}:${msg.info.consumer}:${msg.info.streamSequence}`,
          retry: deadLetterRetry
        })
        yield* JsEnvelope.make(msg.data, msg).term(`${reason}: ${error}`)
        yield* counted(outcome)
        yield* Effect.logWarning(
          `nats: dead-lettered ${where(msg)} to ${options.deadLetter.subject}: ${reason}: ${error}`
        )
      }).pipe(
        // The dead-letter publish still failed after its retries: nak it so that
        // it comes back (unless max_deliver is reached: then it is only logged).
        Effect.catch((cause) =>
          Effect.logError(
            maxDeliver > 0 && msg.info.deliveryCount >= maxDeliver
              ? `nats: could not dead-letter ${where(msg)}, which reached max_deliver: it is LOST to this consumer`
              : `nats: could not dead-letter ${where(msg)}; nak'ed to try again`,
            cause
          ).pipe(
            Effect.andThen(Effect.ignore(JsEnvelope.make(msg.data, msg).nak(Duration.millis(ackWaitMillis)))),
            Effect.andThen(counted("retried"))
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
          Effect.andThen(counted("termed"))
        )
      }
      if (decision === "deadLetter") return deadLetter(msg, "rejected", error)
      const count = envelope.deliveryCount
      if (maxDeliver > 0 && count >= maxDeliver) return deadLetter(msg, "max_deliver", error)
      const step = nthStep(retry, count, failure)
      if (step._tag === "Done") return deadLetter(msg, "retries_exhausted", error)
      const delay = step._tag === "Delay" ? step.millis : ackWaitMillis
      const stepFailed = step._tag === "Failed"
        ? Effect.logWarning(`nats: the retry schedule failed; using the ack wait as the delay`, step.cause)
        : Effect.void
      return stepFailed.pipe(
        Effect.andThen(Effect.logInfo(`nats: retrying ${where(msg)} (delivery ${count}) in ${delay} ms: ${error}`)),
        Effect.andThen(envelope.nak(Duration.millis(delay))),
        Effect.andThen(counted("retried"))
      )
    }

    // Messages received and not yet settled (waiting for a handler, being
    // handled, being settled): one sweeper sends `working` for all of them
    // every `workingEvery`, so the server never redelivers them behind our back.
    const held = new Set<JsMsg>()
    const sweeper = Effect.sync(() => {
      for (const msg of held) {
        try {
          msg.working()
        } catch {
          // the connection is closing: the message will be redelivered
        }
      }
    }).pipe(Effect.repeat(Schedule.spaced(workingEvery)), Effect.delay(workingEvery))

    // The handler's outcome: `undefined` for success, else why it did not succeed.
    const runHandler = (envelope: JsEnvelope.JsEnvelope<A>): Effect.Effect<Failure<E> | undefined, never, R> => {
      const handled = Effect.suspend(() => options.handler(envelope.value, envelope))
      const bounded: Effect.Effect<Failure<E> | undefined, E, R> = timeout === undefined
        ? Effect.as(handled, undefined)
        : handled.pipe(
          Effect.as(undefined),
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () => Effect.succeed<Failure<E>>({ _tag: "TimedOut", after: timeout })
          })
        )
      return Effect.catchCause(bounded, (cause): Effect.Effect<Failure<E>> => {
        // Interrupted by the shutdown: let the interruption through (the
        // message is nak'ed). Any other interruption is a failure.
        if (Cause.hasInterruptsOnly(cause) && shuttingDown) return Effect.failCause(cause) as never
        const failure = Cause.findErrorOption(cause)
        return Effect.succeed(
          Option.isSome(failure)
            ? { _tag: "Failed", error: failure.value }
            : { _tag: "Died", defect: Cause.squash(cause) }
        )
      })
    }

    // Acks are counted in a plain number and reported to the metrics in
    // batches (when a worker runs out of messages, and every 256 messages):
    // a metric update per message would cost more than the ack.
    let ackedUnreported = 0
    let active = 0
    let activeReported = 0
    let sinceReport = 0
    const report = Effect.suspend(() => {
      sinceReport = 0
      const acked = ackedUnreported
      const delta = active - activeReported
      ackedUnreported = 0
      activeReported = active
      return Effect.andThen(
        acked === 0 ? Effect.void : Metric.update(counters.acked, acked),
        delta === 0 ? Effect.void : Metric.modify(inFlight, delta)
      )
    })

    const couldNotSettle = (msg: JsMsg, error: unknown) =>
      Effect.logError(`nats: could not settle ${where(msg)}; it will be redelivered`, error)

    const settle = (msg: JsMsg): Effect.Effect<void, never, R> => {
      const decoded = codec.decode(msg.data)
      if (Result.isFailure(decoded)) {
        const error = Codec.withSubject(decoded.failure, msg.subject).message
        return deadLetter(msg, "decode", error, "decode_failed")
      }
      const envelope = JsEnvelope.make(decoded.success, msg)
      return Effect.flatMap(runHandler(envelope), (failure) => {
        if (failure !== undefined) return Effect.catch(onFailure(envelope, failure), (e) => couldNotSettle(msg, e))
        if (options.doubleAck === true) {
          return envelope.ackAck().pipe(
            Effect.andThen(Effect.sync(() => {
              ackedUnreported++
            })),
            Effect.catch((e) => couldNotSettle(msg, e))
          )
        }
        try {
          msg.ack()
        } catch (e) {
          return couldNotSettle(msg, e)
        }
        ackedUnreported++
        return Effect.void
      })
    }

    const interruptedMsg = (msg: JsMsg) =>
      Effect.logWarning(`nats: interrupted ${where(msg)}; nak'ed for redelivery`).pipe(
        Effect.andThen(Effect.ignore(JsEnvelope.make(msg.data, msg).nak())),
        Effect.andThen(counted("interrupted"))
      )

    const process = (msg: JsMsg): Effect.Effect<void, never, R> => {
      active++
      return Effect.onExit(settle(msg), (exit) => {
        active--
        held.delete(msg)
        return Exit.hasInterrupts(exit) ? interruptedMsg(msg) : Effect.void
      })
    }

    let shuttingDown = false
    let stopping = false
    const prefetch = options.prefetch ?? Math.max(2 * concurrency, 100)
    // Received messages waiting for a worker. Bounded: when it is full the
    // intake waits (and, for consumers read through nats.js' iterator,
    // nothing more is pulled).
    const waiting = yield* Queue.bounded<JsEnvelope.JsEnvelope<Uint8Array>, NatsError | Cause.Done>(
      Math.max(prefetch, concurrency)
    )
    const intake = consumer.consume({
      maxMessages: prefetch,
      bufferSize: prefetch,
      // held (kept alive) from the moment they are received
      onReceive: (msg) => held.add(msg)
    }).pipe(Stream.runIntoQueue(waiting))

    // `concurrency` workers take the messages in turn (one worker: in
    // order). A worker handles the messages at hand one after the other
    // without a fork or a scheduler hop, so the acks of a burst leave in one
    // write. It stops when the intake has ended (returning its error, if
    // any) or, at shutdown, before it starts another message.
    const worker: Effect.Effect<NatsError | undefined, never, R> = Effect.gen(function*() {
      while (true) {
        let next = Queue.takeUnsafe(waiting)
        if (next === undefined || ++sinceReport >= 256) {
          yield* report
          if (next === undefined) next = yield* Effect.exit(Queue.take(waiting))
        }
        if (stopping) return undefined
        if (Exit.isFailure(next)) {
          const error = Option.getOrUndefined(Cause.findErrorOption(next.cause))
          return Cause.isDone(error) ? undefined : error
        }
        yield* process(next.value.msg)
      }
    })
    const workers = Effect.forEach(Array.from({ length: concurrency }, () => worker), (w) => w, {
      concurrency,
      discard: false
    }).pipe(
      Effect.ensuring(report),
      Effect.flatMap((results) => {
        const error = results.find((e) => e !== undefined)
        return error === undefined
          ? Effect.void
          : Effect.logError(`nats: processor on ${consumer.stream} stopped`, error).pipe(
            Effect.andThen(Effect.fail(error))
          )
      })
    )

    const grace = options.gracePeriod ?? "30 seconds"
    // Forked and given their finalizer in one uninterruptible step: no fiber
    // outlives the scope.
    return yield* Effect.uninterruptible(Effect.gen(function*() {
      const intakeFiber = yield* Effect.forkDetach(intake)
      const workersFiber = yield* Effect.forkDetach(workers)
      const keepAlive = yield* Effect.forkDetach(sweeper)
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          // 1. stop pulling, and no worker starts another message; 2. let the
          // handlers running finish (and settle) within the grace period;
          // 3. interrupt the rest (they nak).
          stopping = true
          yield* Fiber.interrupt(intakeFiber)
          const finished = yield* Fiber.await(workersFiber).pipe(Effect.timeoutOption(grace))
          if (Option.isNone(finished)) {
            yield* Effect.logWarning(
              `nats: processor on ${consumer.stream}: ${active} handler(s) still running after the grace period; interrupting`
            )
            shuttingDown = true
            yield* Fiber.interrupt(workersFiber).pipe(Effect.timeoutOption("10 seconds"))
          }
          yield* Fiber.interrupt(keepAlive)
          // 4. what is still held was received and never started: back to the server now
          for (const msg of held) {
            try {
              msg.nak()
            } catch {
              // the connection is closing: redelivered after the ack wait
            }
          }
          held.clear()
          // 5. the acks (and naks) are on the wire before the scope is done.
          yield* Effect.ignore(client.flush)
        })
      )
      return workersFiber
    }))
  })

/**
 * The processor as a Layer: runs for the life of the layer; its release runs
 * the graceful shutdown. If it stops on its own (its consumer could not be
 * recovered), the error is logged; to react to it, use `make` and join the
 * returned fiber.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <A, E, R>(
  options: ProcessorOptions<A, E, R>
): Layer.Layer<never, NatsError, JetStream | NatsClient | R> => Layer.effectDiscard(make(options))
