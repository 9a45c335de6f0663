/**
 * A JetStream message delivered to a consumer: the decoded value, its
 * delivery metadata, and the acknowledgement operations as Effects.
 *
 * @since 0.1.0
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/nats-core"
import { DateTime, Duration, Effect, Result } from "effect"
import * as AckReply from "../internal/ackReply.ts"
import { fromUnknown, invalidArgument } from "../internal/errors.ts"
import * as ServerVersion from "../internal/serverVersion.ts"
import { duration } from "../internal/validation.ts"
import type * as NatsError from "../schemas/NatsError.ts"

/**
 * A message delivered by a JetStream consumer.
 *
 * The metadata getters read the message's reply subject (parsed once, in
 * one pass, on first access), so an envelope costs one small object per
 * message.
 *
 * Acknowledgements: `ack`, `nak`, `term` are final (a second one is ignored,
 * as in nats.js); `working` may be repeated. With `AckPolicy` `explicit`
 * (the default) every message must get one of `ack` / `nak` / `term`, or it
 * is redelivered after the consumer's `ackWait`.
 *
 * @category models
 * @since 0.1.0
 */
export interface JsEnvelope<A> {
  /** The decoded payload (the raw bytes when no codec was given). */
  readonly value: A
  readonly subject: string
  readonly headers: MsgHdrs | undefined
  /** How many times this message was delivered to the consumer: 1 for the first delivery. */
  readonly deliveryCount: number
  readonly redelivered: boolean
  /** Sequence of the message in the stream. */
  readonly streamSequence: number
  /** Sequence of this delivery in the consumer. */
  readonly consumerSequence: number
  /** When the message was stored in the stream. */
  readonly timestamp: DateTime.Utc
  /** Messages left for the consumer after this one, when it was delivered. */
  readonly pending: number
  readonly stream: string
  readonly consumer: string
  /** The raw nats.js message (escape hatch). */
  readonly msg: JsMsg
  /** Acknowledge: processed, do not redeliver. */
  readonly ack: Effect.Effect<void, NatsError.NatsError>
  /**
   * Acknowledge and wait for the consumer's leader to confirm it (double
   * ack). Fails with `Timeout` when no confirmation comes within `timeout`
   * (default: the JetStream context's timeout, 5 s), and with
   * `InvalidArgument` when the message was already acknowledged.
   *
   * What the confirmation guarantees: the ack reached the consumer's leader
   * and it recorded it; a confirmed message is not redelivered while that
   * leader lives. On a single server that is the whole story. On a cluster
   * with nats-server 2.9, the leader confirms *before* the ack is replicated
   * to the consumer's other replicas: when the leader dies within a few
   * milliseconds, the new leader may not have it and redelivers the message
   * (a failover test lost 16 confirmed acks this way, each redelivered: no
   * message lost, some processed twice). Handlers must stay idempotent; the
   * confirmation is a strong hint, not a replicated commit.
   */
  readonly ackAck: (
    options?: { readonly timeout?: Duration.Input | undefined }
  ) => Effect.Effect<void, NatsError.NatsError>
  /** Negative acknowledgement: redeliver, after `delay` when given (else at once). */
  readonly nak: (delay?: Duration.Input) => Effect.Effect<void, NatsError.NatsError>
  /**
   * Terminate: never redeliver. The reason is sent only to servers 2.11+,
   * which record it; older servers ignore a `+TERM` that carries a reason
   * (the message would be redelivered), so there it is dropped.
   */
  readonly term: (reason?: string) => Effect.Effect<void, NatsError.NatsError>
  /** Still working on it: resets the ack wait timer. */
  readonly working: Effect.Effect<void, NatsError.NatsError>
}

const respond = (msg: JsMsg, operation: string, f: (msg: JsMsg) => void): Effect.Effect<void, NatsError.NatsError> =>
  Effect.try({
    try: () => f(msg),
    catch: (cause) => fromUnknown(cause, { operation, subject: msg.subject })
  })

/** The fields of a message's reply subject; nats.js' `info` (which throws) when it is not one we can read. */
const infoOf = (msg: JsMsg): AckReply.Info => {
  // nats.js' JsMsg has its reply subject, untyped
  const info = AckReply.parse((msg as unknown as { readonly reply?: string }).reply)
  if (info !== undefined) return info
  const di = msg.info
  return {
    stream: di.stream,
    consumer: di.consumer,
    delivered: di.deliveryCount,
    streamSequence: di.streamSequence,
    consumerSequence: di.deliverySequence,
    storedNanos: di.timestampNanos,
    pending: di.pending
  }
}

class JsEnvelopeImpl<A> implements JsEnvelope<A> {
  readonly value: A
  readonly msg: JsMsg
  readonly termReasons: boolean
  private parsed: AckReply.Info | undefined
  constructor(value: A, msg: JsMsg, termReasons: boolean) {
    this.value = value
    this.msg = msg
    this.termReasons = termReasons
  }
  private get info(): AckReply.Info {
    return this.parsed ??= infoOf(this.msg)
  }
  get subject() {
    return this.msg.subject
  }
  get headers() {
    return this.msg.headers
  }
  get deliveryCount() {
    return this.info.delivered
  }
  get redelivered() {
    return this.info.delivered > 1
  }
  get streamSequence() {
    return this.info.streamSequence
  }
  get consumerSequence() {
    return this.info.consumerSequence
  }
  get timestamp() {
    return DateTime.makeUnsafe(Math.floor(this.info.storedNanos / 1_000_000))
  }
  get pending() {
    return this.info.pending
  }
  get stream() {
    return this.info.stream
  }
  get consumer() {
    return this.info.consumer
  }
  get ack() {
    return respond(this.msg, "ack", (m) => m.ack())
  }
  get working() {
    return respond(this.msg, "working", (m) => m.working())
  }
  nak(delay?: Duration.Input) {
    if (delay === undefined) return respond(this.msg, "nak", (m) => m.nak())
    const checked = duration("nak", "delay", delay, 0, true)
    return Result.isFailure(checked)
      ? Effect.fail(checked.failure)
      : respond(this.msg, "nak", (m) => m.nak(Duration.toMillis(checked.success)))
  }
  term(reason?: string) {
    const withReason = this.termReasons && reason !== undefined && reason.length > 0
    return respond(this.msg, "term", (m) => withReason ? m.term(reason) : m.term())
  }
  ackAck(options?: { readonly timeout?: Duration.Input | undefined }) {
    const msg = this.msg
    const checked = options?.timeout === undefined ? undefined : duration("ackAck", "timeout", options.timeout, 0)
    if (checked !== undefined && Result.isFailure(checked)) return Effect.fail(checked.failure)
    const timeout = checked === undefined ? undefined : Duration.toMillis(checked.success)
    return Effect.flatMap(
      Effect.tryPromise({
        try: () => msg.ackAck(timeout === undefined ? undefined : { timeout }),
        catch: (cause) =>
          fromUnknown(cause, {
            operation: "ackAck",
            subject: msg.subject,
            ...(timeout === undefined ? {} : { timeoutMillis: timeout })
          })
      }),
      (confirmed): Effect.Effect<void, NatsError.NatsError> =>
        confirmed ? Effect.void : Effect.fail(
          invalidArgument("ackAck", `message ${msg.seq} on ${msg.subject} was already acknowledged`, {
            subject: msg.subject
          })
        )
    )
  }
}

/**
 * An envelope for a raw nats.js message and its decoded value.
 * `termReasons`: whether the server records `term` reasons (2.11+, see
 * `supportsTermReason`); default `false` (a reason is dropped).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <A>(value: A, msg: JsMsg, termReasons = false): JsEnvelope<A> =>
  new JsEnvelopeImpl(value, msg, termReasons)

/**
 * Whether a server of this version accepts a reason with `term` (2.11+).
 * nats-server 2.9 / 2.10 ignore a `+TERM` that carries a reason, and the
 * message is redelivered.
 *
 * @category predicates
 * @since 0.1.0
 */
export const supportsTermReason: (serverVersion: string | undefined) => boolean = ServerVersion.supportsTermReason
