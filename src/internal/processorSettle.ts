/**
 * How the Processor settles one message: decode, run the handler (bounded by
 * its timeout), then ack; a failure is retried (nak with the delay the retry
 * Schedule gives for this delivery), terminated or dead-lettered, as the
 * decision says; a message that does not decode is poison and dead-lettered
 * at once.
 *
 * @internal
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { Context } from "effect"
import { Cause, Duration, Effect, Option, Result, Schedule } from "effect"
import type * as Codec from "../schemas/Codec.ts"
import type { JetStreamShape } from "../services/JetStream.ts"
import * as JsEnvelope from "../services/JsEnvelope.ts"
import type { Decision, Failure } from "../services/Processor.ts"
import * as AckReply from "./ackReply.ts"
import { headersOf, msgIdOf, oneLine, where } from "./deadLetter.ts"
import * as Decode from "./decode.ts"
import type { Outcome, ProcessorMetrics } from "./processorMetrics.ts"
import * as RawHeaders from "./rawHeaders.ts"
import { nthStep } from "./scheduleStep.ts"
import * as TraceContext from "./traceContext.ts"
import { effectNow, effectOf } from "./userCode.ts"

/** What settling needs: the user's options, resolved, and the processor's parts. */
export interface SettleOptions<A, E, R> {
  readonly codec: Codec.Codec<A>
  readonly handler: (value: A, envelope: JsEnvelope.JsEnvelope<A>) => Effect.Effect<void, E, R>
  readonly handlerTimeout: Duration.Duration | undefined
  readonly retry: Schedule.Schedule<unknown, Failure<E>>
  readonly decide: ((failure: Failure<E>, envelope: JsEnvelope.JsEnvelope<A>) => Decision) | undefined
  readonly deadLetter: string | undefined
  readonly doubleAck: boolean
  readonly ackWaitMillis: number
  /** The consumer's `max_deliver`; -1 (or 0) for unlimited. */
  readonly maxDeliver: number
  /** Whether the server records a `term` reason. */
  readonly termReasons: boolean
  readonly publish: JetStreamShape["publish"]
  readonly metrics: ProcessorMetrics
  /** The services the retry schedule steps with. */
  readonly context: Context.Context<never>
  /** The delay of the naks of the shutdown (see `Processor`). */
  readonly shutdownNakDelayMillis: number
  /** True once the shutdown interrupts handlers (their interruption is let through). */
  readonly shuttingDown: () => boolean
  /** How a message's span relates to its producer's span (see `Processor`). */
  readonly traceParent: "child" | "link" | undefined
  /** Whether a tracer is installed where the processor was made: messages get spans then. */
  readonly tracing: boolean
}

/** A dead-letter publish is retried a few times before giving up on it for this delivery. */
const deadLetterRetry = Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 4 }))

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

/** What `decide` says (retry when it throws or answers something else: the message comes back). */
const decisionOf = <A, E, R>(
  options: SettleOptions<A, E, R>,
  envelope: JsEnvelope.JsEnvelope<A>,
  failure: Failure<E>
): Decision => {
  if (options.decide === undefined) return "retry"
  try {
    const decision: unknown = options.decide(failure, envelope)
    return decision === "term" || decision === "deadLetter" || decision === "retry" ? decision : "retry"
  } catch {
    return "retry"
  }
}

/** The conventions' attributes of a JetStream message being processed. */
const jetStreamAttributes = (envelope: JsEnvelope.JsEnvelope<unknown>): Record<string, unknown> => {
  const msgId = RawHeaders.get(envelope.msg, "Nats-Msg-Id")
  // from the reply subject, in one pass (nats.js' `info` costs several times that)
  const info = AckReply.parse((envelope.msg as unknown as { readonly reply?: string }).reply)
  const attributes: Record<string, unknown> = {
    "messaging.system": "nats",
    "messaging.destination.name": envelope.subject,
    "messaging.operation.type": "process",
    "messaging.operation.name": "process",
    "messaging.consumer.group.name": info?.consumer,
    "messaging.message.body.size": envelope.msg.data.length,
    "messaging.nats.stream": info?.stream,
    "messaging.nats.stream_sequence": info?.streamSequence,
    "messaging.nats.delivery_count": info?.delivered
  }
  if (msgId) attributes["messaging.message.id"] = msgId
  return attributes
}

/** Marks a handler that ran out of time (see `handlerOf`). */
const timedOut: unique symbol = Symbol("timedOut")

/**
 * The handler of one message, bounded by its timeout: it succeeds with
 * `timedOut` when it ran out of time. The user's function is called now
 * (`settle` runs the result at once); when `traced`, when the result runs,
 * so that the function's body runs in the message's span.
 */
const handlerOf = <A, E, R>(
  options: SettleOptions<A, E, R>,
  envelope: JsEnvelope.JsEnvelope<A>,
  traced: boolean
): Effect.Effect<unknown, E, R> => {
  const call = () => options.handler(envelope.value, envelope)
  const handled = traced ? effectOf("the handler", call) : effectNow("the handler", call)
  const timeout = options.handlerTimeout
  return timeout === undefined ? handled : Effect.timeoutOrElse(Effect.asVoid(handled), {
    duration: timeout,
    orElse: () => Effect.succeed(timedOut)
  })
}

/**
 * Why a handler's run did not succeed; `undefined` for an interruption by
 * the shutdown (let through: the message is nak'ed). Any other
 * interruption is a failure.
 */
const failureOf = <E>(cause: Cause.Cause<E>, shuttingDown: boolean): Failure<E> | undefined => {
  if (Cause.hasInterruptsOnly(cause) && shuttingDown) return undefined
  const failure = Cause.findErrorOption(cause)
  return Option.isSome(failure)
    ? { _tag: "Failed", error: failure.value }
    : { _tag: "Died", defect: Cause.squash(cause) }
}

/** The settling functions of one processor. */
export const makeSettler = <A, E, R>(options: SettleOptions<A, E, R>) => {
  const { ackWaitMillis, maxDeliver, metrics } = options
  const envelopeOf = <V>(value: V, msg: JsMsg) => JsEnvelope.make(value, msg, options.termReasons)

  /** Terminates with the reason logged (no dead-letter subject). */
  const terminate = (msg: JsMsg, reason: string, error: string, outcome: Outcome) =>
    Effect.logWarning(`nats: terminated ${where(msg)}: ${reason}: ${error}`).pipe(
      Effect.andThen(envelopeOf(msg.data, msg).term(`${reason}: ${error}`)),
      Effect.andThen(metrics.outcome(outcome === "dead_lettered" ? "termed" : outcome, msg, `${reason}: ${error}`))
    )

  /**
   * Publishes the dead letter, then terms the original. When the publish
   * still fails after its retries the original is nak'ed to come back (at
   * `max_deliver` that is the end of it: logged as lost).
   */
  const deadLetter = (msg: JsMsg, reason: string, cause: string, outcome: Outcome = "dead_lettered") => {
    const error = oneLine(cause)
    const subject = options.deadLetter
    const sent = subject === undefined ? terminate(msg, reason, error, outcome) : options.publish(subject, msg.data, {
      headers: headersOf(msg, reason, error),
      msgId: msgIdOf(msg),
      retry: deadLetterRetry
    }).pipe(
      Effect.andThen(envelopeOf(msg.data, msg).term(`${reason}: ${error}`)),
      Effect.andThen(metrics.outcome(outcome, msg, `${reason}: ${error}`)),
      Effect.andThen(Effect.logWarning(`nats: dead-lettered ${where(msg)} to ${subject}: ${reason}: ${error}`))
    )
    return sent.pipe(
      Effect.catch((failure) =>
        Effect.logError(
          maxDeliver > 0 && msg.info.deliveryCount >= maxDeliver
            ? `nats: could not dead-letter ${where(msg)}, which reached max_deliver: it is LOST to this consumer`
            : `nats: could not dead-letter ${where(msg)}; nak'ed to try again`,
          failure
        ).pipe(
          Effect.andThen(Effect.ignore(envelopeOf(msg.data, msg).nak(Duration.millis(ackWaitMillis)))),
          Effect.andThen(metrics.outcome("retried", msg, `could not dead-letter (${reason}: ${error})`))
        )
      )
    )
  }

  /** Naks with the delay the retry schedule gives for this delivery; dead-letters when it has ended. */
  const retry = (envelope: JsEnvelope.JsEnvelope<A>, failure: Failure<E>, error: string) => {
    const msg = envelope.msg
    const count = envelope.deliveryCount
    if (maxDeliver > 0 && count >= maxDeliver) return deadLetter(msg, "max_deliver", error)
    const step = nthStep(options.retry, count, failure, options.context)
    if (step._tag === "Done") return deadLetter(msg, "retries_exhausted", error)
    const delay = step._tag === "Delay" ? step.millis : ackWaitMillis
    const stepFailed = step._tag === "Failed"
      ? Effect.logWarning(`nats: the retry schedule failed; using the ack wait as the delay`, step.cause)
      : Effect.void
    return stepFailed.pipe(
      Effect.andThen(Effect.logInfo(`nats: retrying ${where(msg)} (delivery ${count}) in ${delay} ms: ${error}`)),
      Effect.andThen(envelope.nak(Duration.millis(delay))),
      Effect.andThen(metrics.outcome("retried", msg, error))
    )
  }

  const onFailure = (envelope: JsEnvelope.JsEnvelope<A>, failure: Failure<E>) => {
    const decision = decisionOf(options, envelope, failure)
    const error = describe(failure)
    switch (decision) {
      case "term":
        return Effect.logWarning(`nats: terminated ${where(envelope.msg)}: ${error}`).pipe(
          Effect.andThen(envelope.term(error)),
          Effect.andThen(metrics.outcome("termed", envelope.msg, error))
        )
      case "deadLetter":
        return deadLetter(envelope.msg, "rejected", error)
      case "retry":
        return retry(envelope, failure, error)
    }
  }

  const couldNotSettle = (msg: JsMsg, error: unknown) =>
    Effect.logError(`nats: could not settle ${where(msg)}; it will be redelivered`, error)

  const ack = (envelope: JsEnvelope.JsEnvelope<A>): Effect.Effect<void> => {
    if (options.doubleAck) {
      return envelope.ackAck().pipe(
        Effect.andThen(Effect.sync(() => metrics.ack(envelope.msg))),
        Effect.catch((e) => couldNotSettle(envelope.msg, e))
      )
    }
    try {
      envelope.msg.ack()
    } catch (e) {
      return couldNotSettle(envelope.msg, e)
    }
    metrics.ack(envelope.msg)
    return Effect.void
  }

  /** Decodes, handles and settles one message. Never fails. */
  const settle = (msg: JsMsg): Effect.Effect<void, never, R> => {
    const decoded = Decode.payload(options.codec, msg)
    if (Result.isFailure(decoded)) return deadLetter(msg, "decode", decoded.failure.message, "decode_failed")
    const envelope = envelopeOf(decoded.success, msg)
    metrics.taken(msg)
    const started = performance.now()
    // one step after the handler, whatever its exit
    const handled = (traced: boolean) =>
      Effect.matchCauseEffect(handlerOf(options, envelope, traced), {
        onSuccess: (result): Effect.Effect<void> => {
          metrics.handled(performance.now() - started)
          if (result === timedOut) return failed({ _tag: "TimedOut", after: options.handlerTimeout ?? Duration.zero })
          return traced ? TraceContext.settle("ack", msg.subject, () => ack(envelope)) : ack(envelope)
        },
        onFailure: (cause) => {
          const failure = failureOf(cause, options.shuttingDown())
          // interrupted by the shutdown: not a duration of the handler
          if (failure === undefined) return Effect.failCause(cause) as never
          metrics.handled(performance.now() - started)
          return failed(failure)
        }
      })
    const failed = (failure: Failure<E>) => Effect.catch(onFailure(envelope, failure), (e) => couldNotSettle(msg, e))
    // with a tracer installed: a consumer span per message (the child of the producer's when it sent
    // one), the handler and the settlement inside it; without one, nothing (not even the headers read)
    return options.tracing
      ? TraceContext.processWith(`process ${msg.subject}`, msg, {
        kind: "consumer",
        attributes: () => jetStreamAttributes(envelope),
        relation: options.traceParent
      }, handled)
      : handled(false)
  }

  /** A handler interrupted by the shutdown: back to the server (delayed: see `Processor`'s shutdown). */
  const interrupted = (msg: JsMsg): Effect.Effect<void> =>
    Effect.logWarning(`nats: interrupted ${where(msg)}; nak'ed for redelivery`).pipe(
      Effect.andThen(Effect.ignore(envelopeOf(msg.data, msg).nak(Duration.millis(options.shutdownNakDelayMillis)))),
      Effect.andThen(metrics.outcome("interrupted", msg, "interrupted by the shutdown"))
    )

  return { settle, interrupted }
}
