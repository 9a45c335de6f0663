/**
 * A subject (or subject template) paired with a payload codec: publish values,
 * subscribe to decoded envelopes, and choose what happens to payloads that do
 * not decode.
 *
 * @since 0.1.0
 */
import type { Msg, MsgHdrs } from "@nats-io/nats-core"
import type { Schema, Scope } from "effect"
import { Effect, Option, Result, Stream } from "effect"
import * as Decode from "../internal/decode.ts"
import * as Codec from "../schemas/Codec.ts"
import type { NatsError } from "../schemas/NatsError.ts"
import type { SubjectTemplate } from "../schemas/Subject.ts"
import type { PublishOptions, SubscribeOptions } from "./NatsClient.ts"
import { NatsClient } from "./NatsClient.ts"

/**
 * Parameters of a subject template (`{}` for a plain subject).
 *
 * @category models
 * @since 0.1.0
 */
export type Params = Readonly<Record<string, string>>

/**
 * The parameters of a subject without a template.
 *
 * @category models
 * @since 0.1.0
 */
export type NoParams = Readonly<Record<never, never>>

/**
 * A typed subject: where messages go and how their payloads are encoded.
 *
 * @category models
 * @since 0.1.0
 */
export interface TypedSubject<A, P extends Params = NoParams> {
  /** The subject, or the template string. */
  readonly subject: string
  /** The template, when the subject has parameters. */
  readonly template: SubjectTemplate<P> | undefined
  /** The pattern to subscribe to (the subject itself when it has no parameters). */
  readonly pattern: string
  readonly codec: Codec.Codec<A>
}

/**
 * A decoded message.
 *
 * @category models
 * @since 0.1.0
 */
export interface Envelope<A, P extends Params = NoParams> {
  readonly value: A
  readonly subject: string
  /** Template parameters parsed from the subject (`{}` for a plain subject). */
  readonly params: P
  readonly headers: MsgHdrs | undefined
  /** The raw nats.js message (reply subject, raw bytes, `respond`). */
  readonly msg: Msg
}

// The subject and headers are read from the message only when asked for:
// nats.js decodes them lazily, and most handlers never look.
class EnvelopeImpl<A, P extends Params> implements Envelope<A, P> {
  readonly value: A
  readonly params: P
  readonly msg: Msg
  constructor(value: A, params: P, msg: Msg) {
    this.value = value
    this.params = params
    this.msg = msg
  }
  get subject(): string {
    return this.msg.subject
  }
  get headers(): MsgHdrs | undefined {
    return this.msg.headers
  }
}

/**
 * What a subscription does with a payload that does not decode:
 *
 * - `"fail"`: the stream fails with the `DecodeError` (messages decoded before
 *   it are still emitted).
 * - `"logAndSkip"` (default): a warning is logged with the subject and the
 *   error, and the stream goes on.
 * - a function: called with the error and the raw message (to publish it to a
 *   dead-letter subject, count it...), then the stream goes on.
 *
 * @category models
 * @since 0.1.0
 */
export type OnDecodeError<R = never> =
  | "fail"
  | "logAndSkip"
  | ((error: Codec.DecodeError, msg: Msg) => Effect.Effect<void, never, R>)

/**
 * Options of `subscribe`.
 *
 * @category models
 * @since 0.1.0
 */
export interface TypedSubscribeOptions<R = never> extends SubscribeOptions {
  readonly onDecodeError?: OnDecodeError<R> | undefined
}

/**
 * Options of `publish`; a templated subject also needs its `params`.
 *
 * @category models
 * @since 0.1.0
 */
export type TypedPublishOptions<P extends Params> = NoParams extends P ?
  PublishOptions & { readonly params?: P | undefined }
  : PublishOptions & { readonly params: P }

/**
 * Creates a typed subject from a subject (or a template from
 * `Subject.template`) and a Schema (JSON codec) or a `Codec`.
 *
 * @example
 * ```ts
 * const OrderCreated = TypedSubject.make("orders.created", Order)
 * const OrderEvents = TypedSubject.make(Subject.template("orders.{orderId}.events"), OrderEvent)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: {
  <A, I>(subject: string, schema: Schema.Codec<A, I>): TypedSubject<A>
  <A>(subject: string, codec: Codec.Codec<A>): TypedSubject<A>
  <P extends Params, A, I>(template: SubjectTemplate<P>, schema: Schema.Codec<A, I>): TypedSubject<A, P>
  <P extends Params, A>(template: SubjectTemplate<P>, codec: Codec.Codec<A>): TypedSubject<A, P>
} = (
  subject: string | SubjectTemplate<Params>,
  schemaOrCodec: Schema.Codec<unknown, unknown> | Codec.Codec<unknown>
) => {
  const codec = Codec.fromInput(schemaOrCodec)
  return typeof subject === "string"
    ? { subject, template: undefined, pattern: subject, codec }
    : { subject: subject.template, template: subject, pattern: subject.pattern, codec }
}

const resolveSubject = <A, P extends Params>(
  self: TypedSubject<A, P>,
  params: P | undefined
): Result.Result<string, NatsError> =>
  self.template === undefined ? Result.succeed(self.subject) : self.template.makeResult(params ?? ({} as P))

/**
 * Encodes a value and publishes it. Encoding and subject errors fail before
 * anything is sent.
 *
 * @category publishing
 * @since 0.1.0
 */
export const publish = <A, P extends Params>(
  self: TypedSubject<A, P>,
  value: A,
  ...[options]: NoParams extends P ? [options?: TypedPublishOptions<P>] : [options: TypedPublishOptions<P>]
): Effect.Effect<void, NatsError | Codec.EncodeError, NatsClient> =>
  NatsClient.use((client): Effect.Effect<void, NatsError | Codec.EncodeError> => {
    const subject = resolveSubject(self, options?.params)
    if (Result.isFailure(subject)) return Effect.fail(subject.failure)
    const payload = self.codec.encode(value)
    if (Result.isFailure(payload)) return Effect.fail(Codec.withSubject(payload.failure, subject.success))
    // spans and metrics name the typed subject (a template's own text, not each filled-in subject)
    return client.publish(subject.success, payload.success, { ...options, destination: self.subject })
  })

/**
 * Turns a stream of raw messages into decoded envelopes, applying the decode
 * failure policy. Works a chunk at a time: decoding is synchronous and
 * allocates one envelope per message.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeStream = <A, P extends Params, E, R, R2 = never>(
  self: TypedSubject<A, P>,
  messages: Stream.Stream<Msg, E, R>,
  onDecodeError: OnDecodeError<R2> = "logAndSkip"
): Stream.Stream<Envelope<A, P>, E | Codec.DecodeError, R | R2> => {
  const { codec, template } = self
  const noParams = {} as NoParams as P
  const decode = (msg: Msg, out: Array<Envelope<A, P>>): Codec.DecodeError | undefined => {
    const decoded = Decode.payload(codec, msg)
    if (Result.isFailure(decoded)) return decoded.failure
    const params = template === undefined ? noParams : Option.getOrUndefined(template.parse(msg.subject))
    if (params === undefined) {
      return new Codec.DecodeError({
        message: `subject ${msg.subject} does not fit the template ${self.subject}`,
        subject: msg.subject
      })
    }
    out.push(new EnvelopeImpl(decoded.success, params, msg))
    return undefined
  }
  return Decode.decodeStream(messages, {
    decode,
    policy: onDecodeError === "logAndSkip" ? logAndSkip : onDecodeError
  })
}

const logAndSkip = (error: Codec.DecodeError, msg: Msg): Effect.Effect<void> =>
  Effect.logWarning(`nats: skipped a message on ${msg.subject} that did not decode: ${error.message}`).pipe(
    Effect.annotateLogs({ subject: msg.subject })
  )

/**
 * Subscribes to a typed subject (a template subscribes to its pattern) and
 * streams decoded envelopes.
 *
 * @example
 * ```ts
 * const OrderEvents = TypedSubject.make(Subject.template("orders.{orderId}.{event}"), Order)
 * TypedSubject.subscribe(OrderEvents).pipe(
 *   Stream.runForEach((e) => Effect.log(e.params.orderId, e.params.event, e.value))
 * )
 * ```
 *
 * @category subscribing
 * @since 0.1.0
 */
export const subscribe = <A, P extends Params, R = never>(
  self: TypedSubject<A, P>,
  options?: TypedSubscribeOptions<R>
): Stream.Stream<Envelope<A, P>, NatsError | Codec.DecodeError, NatsClient | R> =>
  Stream.unwrap(
    NatsClient.useSync((client) => decodeStream(self, client.subscribe(self.pattern, options), options?.onDecodeError))
  )

/**
 * Subscribes now (returns once the server registered the interest) and gives
 * the stream of decoded envelopes of this subscription.
 *
 * @category subscribing
 * @since 0.1.0
 */
export const subscribeScoped = <A, P extends Params, R = never>(
  self: TypedSubject<A, P>,
  options?: TypedSubscribeOptions<R>
): Effect.Effect<
  Stream.Stream<Envelope<A, P>, NatsError | Codec.DecodeError, R>,
  NatsError,
  NatsClient | Scope.Scope
> =>
  NatsClient.use((client) =>
    Effect.map(
      client.subscribeScoped(self.pattern, options),
      (messages) => decodeStream(self, messages, options?.onDecodeError)
    )
  )
