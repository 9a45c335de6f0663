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
 * Validation: the consumer must have explicit acks (not an ordered one);
 * `concurrency` and `prefetch` are positive integers; `handlerTimeout` and
 * `workingInterval` finite positive durations, `gracePeriod` finite and not
 * negative; the dead-letter subject must be captured by a stream other than
 * the processed one. A bad option fails `make` with `InvalidArgument` before
 * anything is pulled.
 *
 * Shutdown (the scope closes): intake stops first (no more pulls) and no
 * worker starts another message; in-flight handlers get `gracePeriod` to
 * finish and are acked as usual; those still running after it are
 * interrupted and nak'ed; received messages no handler started are nak'ed
 * too. These naks are delayed by two pull heartbeats (at least 1 s), and the
 * consumer's info is asked first: on nats-server 2.9 an immediate nak right
 * after a pull subscription closed can hand a message out twice at once and
 * strand another until its ack wait. The connection is flushed, so every ack and
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
import type { Scope } from "effect"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Queue, Schedule, Stream } from "effect"
import * as DeadLetter from "../internal/deadLetter.ts"
import { invalidArgument } from "../internal/errors.ts"
import * as Metrics from "../internal/processorMetrics.ts"
import { makeSettler } from "../internal/processorSettle.ts"
import * as Validation from "../internal/validation.ts"
import * as Codec from "../schemas/Codec.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { CodecInput, ConsumerShape } from "./Consumer.ts"
import { JetStream } from "./JetStream.ts"
import { JetStreamManager } from "./JetStreamManager.ts"
import type * as JsEnvelope from "./JsEnvelope.ts"
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
  /** How long one pull request lives on the server (`ConsumeOptions.expires`). Default 30 s. */
  readonly expires?: Duration.Input | undefined
  /**
   * The server's heartbeat while a pull waits (`ConsumeOptions.idleHeartbeat`).
   * Default 1 s: a pull stalled by a consumer leader's failover is noticed
   * after 3 of them and opened again.
   */
  readonly idleHeartbeat?: Duration.Input | undefined
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
  /**
   * How each message's span (`process {subject}`, kind consumer, made when
   * a tracer is installed where the processor is made) relates to the
   * producer's span: its child (default: one trace from the
   * publish to the handler), or the root of a new trace linked to it.
   */
  readonly traceParent?: "child" | "link" | undefined
  /**
   * How often the consumer's lag is read (its info: `num_pending`,
   * `num_ack_pending`) into the gauges `effect_nats_consumer_pending` and
   * `effect_nats_consumer_ack_pending`. Default 10 s.
   */
  readonly lagInterval?: Duration.Input | undefined
  /** A handler running longer fails with `TimedOut`. */
  readonly handlerTimeout?: Duration.Input | undefined
  /**
   * `ackAck` instead of `ack`: wait for the consumer's leader to confirm
   * (see `JsEnvelope.ackAck` for what that guarantees: on a 2.9 cluster, not
   * replication — a leader that dies right after may let the message be
   * redelivered).
   */
  readonly doubleAck?: boolean | undefined
  /** Time given to in-flight handlers when the scope closes. Default 30 seconds. */
  readonly gracePeriod?: Duration.Input | undefined
  /** How often a message being handled sends `working`. Default: a third of the consumer's ack wait. */
  readonly workingInterval?: Duration.Input | undefined
  /**
   * Called with what became of each message, once it is settled (acked,
   * retried, dead-lettered, termed, not decoded, interrupted): for tests,
   * audits and operators. Synchronous, on the processor's fiber: keep it
   * cheap (offer to a `Queue` to do more); what it throws is ignored.
   *
   * @example
   * ```ts
   * const outcomes = yield* Queue.unbounded<Processor.MessageOutcome>()
   * yield* Processor.make({ consumer, codec: Order, handler, onOutcome: (o) => Queue.offerUnsafe(outcomes, o) })
   * ```
   */
  readonly onOutcome?: ((outcome: MessageOutcome) => void) | undefined
}

/**
 * What became of a message (the `outcome` attribute of `messages`).
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome = "acked" | "retried" | "dead_lettered" | "termed" | "decode_failed" | "interrupted"

/**
 * What became of one message: its `outcome` (`acked`, `retried`,
 * `dead_lettered`, `termed`, `decode_failed`, `interrupted`), which message
 * (subject, stream sequence, delivery count), and why (`detail`).
 *
 * @category models
 * @since 0.1.0
 */
export interface MessageOutcome {
  readonly outcome: Outcome
  readonly subject: string
  readonly streamSequence: number
  readonly deliveryCount: number
  /** Why, for every outcome but `acked` (the failure, the dead-letter reason...). */
  readonly detail: string | undefined
}

/**
 * Messages by outcome (attribute `outcome`: `acked`, `retried`,
 * `dead_lettered`, `termed`, `decode_failed`, `interrupted`; and `stream`,
 * `consumer`).
 *
 * @category metrics
 * @since 0.1.0
 */
export const messages = Metrics.messages

/**
 * Handlers running now.
 *
 * @category metrics
 * @since 0.1.0
 */
export const inFlight = Metrics.inFlight

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
export const DeadLetterHeaders = DeadLetter.DeadLetterHeaders

/** The options, checked, with their defaults and what the consumer's info says. */
const settingsOf = Effect.fnUntraced(function*<A, E, R>(options: ProcessorOptions<A, E, R>) {
  const operation = "Processor.make"
  const { consumer } = options
  if (consumer.kind === "ordered") {
    return yield* invalidArgument(operation, "a processor needs a consumer with explicit acks, not an ordered one")
  }
  const info = yield* consumer.info
  if (info.config.ack_policy !== "explicit") {
    return yield* invalidArgument(
      operation,
      `a processor needs a consumer with explicit acks (consumer ${info.name} has ack policy ${info.config.ack_policy})`
    )
  }
  const concurrency = options.concurrency ?? 1
  const prefetch = options.prefetch ?? Math.max(2 * concurrency, 100)
  const invalidCount = Validation.counts(operation, undefined, { concurrency, prefetch }) ??
    Validation.durations(operation, { expires: options.expires }, "1 second") ??
    Validation.durations(operation, { idleHeartbeat: options.idleHeartbeat })
  if (invalidCount !== undefined) return yield* invalidCount
  const ackWaitMillis = Math.max(1, Math.floor((info.config.ack_wait ?? 30_000_000_000) / 1_000_000))
  const durations = {
    handlerTimeout: options.handlerTimeout === undefined ? undefined : yield* Effect.fromResult(
      Validation.duration(operation, "handlerTimeout", options.handlerTimeout, 0)
    ),
    gracePeriod: yield* Effect.fromResult(
      Validation.duration(operation, "gracePeriod", options.gracePeriod, "30 seconds", true)
    ),
    workingInterval: yield* Effect.fromResult(
      Validation.duration(
        operation,
        "workingInterval",
        options.workingInterval,
        Duration.millis(Math.max(50, Math.floor(ackWaitMillis / 3)))
      )
    ),
    lagInterval: yield* Effect.fromResult(
      Validation.duration(operation, "lagInterval", options.lagInterval, "10 seconds")
    )
  }
  return {
    ...durations,
    concurrency,
    prefetch,
    ackWaitMillis,
    // longer than two heartbeats of the pull (see the shutdown), at least 1 s
    shutdownNakDelayMillis: Math.max(
      1000,
      2 *
        (options.idleHeartbeat === undefined
          ? 1000
          : Duration.toMillis(Duration.fromInputUnsafe(options.idleHeartbeat)))
    ),
    consumerName: info.name,
    maxDeliver: info.config.max_deliver ?? -1
  }
})

/**
 * The dead-letter subject must be captured, and not by the stream being
 * processed (a dead letter would come back as a new message, forever). A
 * failed lookup (a timeout, a permission) fails with its own reason.
 */
const checkDeadLetter = Effect.fnUntraced(function*(subject: string, processed: string) {
  const jsm = yield* JetStreamManager
  const captured = yield* jsm.streamNameBySubject(subject)
  if (Option.isNone(captured)) {
    return yield* invalidArgument("Processor.make", `no stream captures the dead-letter subject ${subject}`)
  }
  if (captured.value === processed) {
    return yield* invalidArgument(
      "Processor.make",
      `the dead-letter subject ${subject} is captured by the processed stream ${processed}`
    )
  }
})

/**
 * Messages received and not yet settled (waiting for a worker, handled,
 * being settled): one sweeper sends `working` for all of them every
 * interval, so the server never redelivers them behind the processor's back.
 */
class Held {
  readonly messages = new Set<JsMsg>()

  /** Sends `working` for every held message, every `interval`, until interrupted. */
  sweeper(interval: Duration.Duration): Effect.Effect<void> {
    return Effect.sync(() => this.each((msg) => msg.working())).pipe(
      Effect.repeat(Schedule.spaced(interval)),
      Effect.delay(interval),
      Effect.asVoid
    )
  }

  /** Naks what is still held (received, never started), to come back after `delayMillis`. */
  nakAll(delayMillis: number): void {
    this.each((msg) => msg.nak(delayMillis))
    this.messages.clear()
  }

  private each(f: (msg: JsMsg) => void): void {
    for (const msg of this.messages) {
      try {
        f(msg)
      } catch {
        // the connection is closing: the message will be redelivered after its ack wait
      }
    }
  }
}

/** What a worker needs of its processor. */
interface WorkerOptions<R> {
  readonly waiting: Queue.Queue<JsEnvelope.JsEnvelope<Uint8Array>, NatsError.NatsError | Cause.Done>
  readonly metrics: Metrics.ProcessorMetrics
  readonly held: Held
  /** Decodes, handles and settles one message; never fails. */
  readonly settle: (msg: JsMsg) => Effect.Effect<void, never, R>
  /** Naks a message whose handling the shutdown interrupted. */
  readonly interrupted: (msg: JsMsg) => Effect.Effect<void>
  /** True once the shutdown began: no worker starts another message. */
  readonly stopping: () => boolean
}

/**
 * A worker: takes the messages in turn with the others (one worker: in
 * order), and handles the messages at hand one after the other without a
 * fork or a scheduler hop, so the acks of a burst leave in one write. It
 * stops when the intake has ended (returning its error, if any) or, at
 * shutdown, before it starts another message.
 *
 * The message it is settling is its `current`: the worker's exit (one
 * finalizer, not one per message) ends it when the worker is interrupted
 * meanwhile (at shutdown: it is nak'ed).
 */
const makeWorker = <R>(options: WorkerOptions<R>): Effect.Effect<NatsError.NatsError | undefined, never, R> =>
  Effect.suspend(() => {
    const { held, metrics, waiting } = options
    let current: JsMsg | undefined
    const done = (msg: JsMsg) => {
      current = undefined
      metrics.active--
      held.messages.delete(msg)
    }
    const loop = Effect.gen(function*() {
      while (true) {
        let next = Queue.takeUnsafe(waiting)
        if (next === undefined || metrics.due()) {
          yield* metrics.report
          if (next === undefined) next = yield* Effect.exit(Queue.take(waiting))
        }
        if (options.stopping()) return undefined
        if (Exit.isFailure(next)) {
          const error = Option.getOrUndefined(Cause.findErrorOption(next.cause))
          return Cause.isDone(error) ? undefined : error
        }
        const msg = next.value.msg
        current = msg
        metrics.active++
        yield* options.settle(msg)
        done(msg)
      }
    })
    return Effect.onExit(loop, (exit) => {
      const msg = current
      if (msg === undefined) return Effect.void
      done(msg)
      // interrupted after its settlement was sent (nats.js' `didAck`, set by ack, nak and term): nothing to undo
      const settled = (msg as unknown as { readonly didAck?: boolean }).didAck === true
      return Exit.hasInterrupts(exit) && !settled ? options.interrupted(msg) : Effect.void
    })
  })

/**
 * Starts processing in the current scope and returns at once; the scope's
 * close runs the graceful shutdown. Requires `JetStream` for dead-lettering,
 * `JetStreamManager` to check the dead-letter subject, and `NatsClient` to
 * flush the acks on shutdown. The returned fiber fails if the processor stops
 * on its own (its consumer could not be recovered).
 *
 * @example
 * ```ts
 * const consumer = yield* Consumer.durable({ stream: "ORDERS", durable: "order-worker" })
 * yield* Processor.make({
 *   consumer,
 *   codec: Order,
 *   handler: (order) => charge(order),
 *   concurrency: 16,
 *   deadLetter: { subject: "dlq.orders" }
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <A, E, R>(
  options: ProcessorOptions<A, E, R>
): Effect.Effect<
  Fiber.Fiber<void, NatsError.NatsError>,
  NatsError.NatsError,
  JetStream | JetStreamManager | NatsClient | R | Scope.Scope
> =>
  Effect.gen(function*() {
    const js = yield* JetStream
    const client = yield* NatsClient
    const { consumer } = options
    const settings = yield* settingsOf(options)
    if (options.deadLetter !== undefined) yield* checkDeadLetter(options.deadLetter.subject, consumer.stream)
    const context = yield* Effect.context<never>()
    const metrics = new Metrics.ProcessorMetrics(consumer.stream, settings.consumerName, context, options.onOutcome)
    const held = new Held()
    let shuttingDown = false
    let stopping = false
    const { interrupted, settle } = makeSettler({
      shutdownNakDelayMillis: settings.shutdownNakDelayMillis,
      codec: Codec.fromInput(options.codec),
      handler: options.handler,
      handlerTimeout: settings.handlerTimeout,
      retry: options.retry ?? defaultRetry,
      decide: options.decide,
      deadLetter: options.deadLetter?.subject,
      doubleAck: options.doubleAck === true,
      ackWaitMillis: settings.ackWaitMillis,
      maxDeliver: settings.maxDeliver,
      termReasons: client.core.termReasons(),
      publish: js.publish,
      metrics,
      context,
      shuttingDown: () => shuttingDown,
      traceParent: options.traceParent,
      tracing: yield* Effect.withFiber((fiber) => Effect.succeed(fiber.cache.tracer !== undefined))
    })

    // Received messages waiting for a worker. Bounded: when it is full the
    // intake waits (and, for consumers read through nats.js' iterator,
    // nothing more is pulled).
    const waiting = yield* Queue.bounded<JsEnvelope.JsEnvelope<Uint8Array>, NatsError.NatsError | Cause.Done>(
      Math.max(settings.prefetch, settings.concurrency)
    )
    const intake = consumer.consume({
      maxMessages: settings.prefetch,
      ...(options.expires === undefined ? {} : { expires: options.expires }),
      ...(options.idleHeartbeat === undefined ? {} : { idleHeartbeat: options.idleHeartbeat }),
      bufferSize: settings.prefetch,
      // held (kept alive) from the moment they are received
      onReceive: (msg) => held.messages.add(msg)
    }).pipe(Stream.runIntoQueue(waiting))

    const worker = makeWorker({
      waiting,
      metrics,
      held,
      settle,
      interrupted,
      stopping: () => stopping
    })
    const workers = Effect.forEach(Array.from({ length: settings.concurrency }, () => worker), (w) => w, {
      concurrency: settings.concurrency
    }).pipe(
      Effect.ensuring(metrics.report),
      Effect.flatMap((results) => {
        const error = results.find((e) => e !== undefined)
        return error === undefined
          ? Effect.void
          : Effect.logError(`nats: processor on ${consumer.stream} stopped`, error).pipe(
            Effect.andThen(Effect.fail(error))
          )
      })
    )

    // Forked and given their finalizer in one uninterruptible step: no fiber
    // outlives the scope.
    return yield* Effect.uninterruptible(Effect.gen(function*() {
      const intakeFiber = yield* Effect.forkDetach(intake)
      const workersFiber = yield* Effect.forkDetach(workers)
      const keepAlive = yield* Effect.forkDetach(held.sweeper(settings.workingInterval))
      const lag = yield* Effect.forkDetach(
        consumer.info.pipe(
          Effect.flatMap((info) =>
            Effect.andThen(
              Metric.update(metrics.pending, info.num_pending),
              Metric.update(metrics.ackPending, info.num_ack_pending)
            )
          ),
          Effect.ignore,
          Effect.repeat(Schedule.spaced(settings.lagInterval))
        )
      )
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          // 1. stop pulling, and no worker starts another message; 2. let the
          // handlers running finish (and settle) within the grace period;
          // 3. interrupt the rest (they nak).
          stopping = true
          yield* Fiber.interrupt(intakeFiber)
          // an intake interrupted before it ran never ended the queue: the workers would wait on it
          Queue.endUnsafe(waiting)
          // nats-server 2.9 keeps the closed pull's requests until it next checks their interest, and a
          // nak it takes meanwhile rolls the consumer's delivery pointer back (a message handed out twice
          // at once, another stranded until its ack wait): a consumer info makes it check now, and the
          // naks below are delayed (a delayed nak does not take that path)
          yield* Effect.ignore(consumer.info.pipe(Effect.timeoutOption("2 seconds")))
          const finished = yield* Fiber.await(workersFiber).pipe(Effect.timeoutOption(settings.gracePeriod))
          if (Option.isNone(finished)) {
            yield* Effect.logWarning(
              `nats: processor on ${consumer.stream}: ${metrics.active} handler(s) still running after the grace period; interrupting`
            )
            shuttingDown = true
            yield* Fiber.interrupt(workersFiber).pipe(Effect.timeoutOption("10 seconds"))
          }
          yield* Fiber.interrupt(keepAlive)
          yield* Fiber.interrupt(lag)
          // 4. what is still held was received and never started: back to the server (for another process)
          held.nakAll(settings.shutdownNakDelayMillis)
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
 * @example
 * ```ts
 * const Worker = Processor.layer({ consumer, codec: Order, handler: charge, concurrency: 8 })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <A, E, R>(
  options: ProcessorOptions<A, E, R>
): Layer.Layer<never, NatsError.NatsError, JetStream | JetStreamManager | NatsClient | R> =>
  Layer.effectDiscard(make(options))
