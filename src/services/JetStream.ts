/**
 * JetStream publishing as an Effect service: `publish` with dedup ids,
 * expectations and retries by a `Schedule`, and pipelined `publishAll` /
 * `sink` that keep a bounded window of acks outstanding and check every one,
 * in order.
 *
 * A publish is a request to the subject whose reply is the stream's ack (the
 * exchange nats.js' `js.publish` makes), sent on the connection's shared
 * request inbox: interruptible, and with no `Error` allocated per publish.
 *
 * @since 0.1.0
 */
import type { JetStreamClient } from "@nats-io/jetstream"
import { jetstream } from "@nats-io/jetstream"
import type { Payload } from "@nats-io/nats-core"
import type { Duration, Schedule, Scope } from "effect"
import { Context, Effect, Layer, Result, Schema, Sink, Stream } from "effect"
import type * as Arr from "effect/Array"
import * as Pull from "effect/Pull"
import * as Pipeline from "../internal/jsPipeline.ts"
import * as JsPublish from "../internal/jsPublish.ts"
import * as Metrics from "../internal/metrics.ts"
import * as TraceContext from "../internal/traceContext.ts"
import * as Validation from "../internal/validation.ts"
import * as Codec from "../schemas/Codec.ts"
import type * as Headers from "../schemas/Headers.ts"
import * as NatsError from "../schemas/NatsError.ts"
import { NatsClient } from "./NatsClient.ts"
import type { NoParams, Params, TypedSubject } from "./TypedSubject.ts"

/**
 * The server's acknowledgement of a stored message.
 *
 * @category models
 * @since 0.1.0
 */
export interface PubAck {
  /** The stream that stored the message. */
  readonly stream: string
  /** Its sequence in that stream (for a duplicate: the sequence of the original). */
  readonly seq: number
  /** `true` when the `msgId` was seen within the stream's duplicate window: nothing new was stored. */
  readonly duplicate: boolean
  /** The JetStream domain, when there is one. */
  readonly domain?: string | undefined
}

/**
 * Conditions the server checks before storing a message; a mismatch fails the
 * publish with reason `WrongLastSequence` and stores nothing.
 *
 * @category models
 * @since 0.1.0
 */
export interface Expect {
  /** The stream's last sequence must be this. */
  readonly lastSequence?: number | undefined
  /** The last sequence of a message on this subject must be this (0: no message on it yet). */
  readonly lastSubjectSequence?: number | undefined
  /** The `msgId` of the stream's last message must be this. */
  readonly lastMsgId?: string | undefined
  /** The stream capturing the subject must be this one. */
  readonly streamName?: string | undefined
}

/**
 * Options of `publish`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  /**
   * Deduplication id (`Nats-Msg-Id`): the stream stores a message with an id
   * it saw within its duplicate window only once, and acks the copy with
   * `duplicate: true`.
   */
  readonly msgId?: string | undefined
  readonly expect?: Expect | undefined
  readonly headers?: Headers.HeadersInit | undefined
  /** How long to wait for the ack. Default: the JetStream context's timeout (`JetStreamOptions.timeout`, 5 s). */
  readonly timeout?: Duration.Input | undefined
  /**
   * Retries of failures that may succeed later (`isRetryable`: a `Timeout`
   * while the server is away, for example). Failures that will not change
   * (`NoStreamForSubject`, `WrongLastSequence`, `InvalidSubject`...) fail at
   * once.
   *
   * A timed out publish may still have been stored. Give a `msgId` when you
   * retry: the stream then keeps one copy. **A retry without `msgId` may
   * store the message twice.**
   */
  readonly retry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
  /**
   * What spans and metrics call this message's destination: a template
   * (`publishTyped` gives the typed subject's) or a family of subjects.
   * Default: spans name the subject, metrics count it under its first token
   * and `.>`.
   */
  readonly destination?: string | undefined
}

/**
 * One message of `publishAll` / `sink`.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutgoingMessage {
  readonly subject: string
  readonly payload?: Payload | undefined
  readonly msgId?: string | undefined
  readonly headers?: Headers.HeadersInit | undefined
  readonly expect?: Expect | undefined
  /**
   * What metrics call this message's destination: a template or a family of
   * subjects. Default: its first token and `.>`.
   */
  readonly destination?: string | undefined
}

/**
 * Options of `publishAll` / `sink`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishAllOptions {
  /**
   * Most acks outstanding at once. Default `defaultWindow` (256). Larger
   * windows gain little on a local server and keep more messages in doubt
   * when one fails.
   */
  readonly window?: number | undefined
  /** How long to wait for each ack. Default: the JetStream context's timeout. */
  readonly timeout?: Duration.Input | undefined
  /**
   * Retries of retryable failures (`isRetryable`: the stream had no leader
   * during an election, the connection dropped, an ack timed out), instead
   * of failing the stream. At a failure the producer pauses, the acks in
   * flight are awaited, and after the schedule's delay every message that
   * failed is sent again, then the rest of the input. The schedule is fed
   * the failure and starts afresh once an ack comes in; when it ends the
   * stream fails as without it.
   *
   * Every message is sent with a `msgId` then (one is made for a message
   * that has none): a message whose ack was lost but that was stored is
   * acked again as a duplicate (`duplicate: true`) within the stream's
   * duplicate window (2 minutes by default), never stored twice. Messages
   * after a failed one may be stored before it.
   *
   * @example
   * ```ts
   * // ride out a stream leader election (a few seconds on a 3-node cluster)
   * js.publishAll(messages, { retry: Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: 60 })) })
   * ```
   */
  readonly retry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
}

/**
 * The ack of one message of `publishAll` / `sink`: which input it confirms
 * (`index`, from 0, and `msgId`, the one given or made for a retry).
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishedAck extends PubAck {
  readonly index: number
  readonly msgId: string | undefined
}

/**
 * What `sink` reports once every message is acked.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishSummary {
  /** Messages acked (duplicates included). */
  readonly count: number
  /** Acks with `duplicate: true`. */
  readonly duplicates: number
  readonly first: PublishedAck | undefined
  readonly last: PublishedAck | undefined
}

/**
 * The default window of `publishAll` / `sink`.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultWindow = 256

/**
 * A message of `publishAll` / `sink` failed: the `index` (from 0, in input
 * order), `subject` and `msgId` name it, `error` says why (its `reason`:
 * `WrongLastSequence`, `NoStreamForSubject`, `Timeout`, `InvalidSubject`...).
 *
 * Every message before `index` was acked (and emitted). The stream fails
 * once the acks of the messages sent after it (at most `window - 1`) are in:
 * `ackedAfter` lists those acked (stored). Republish from `index`, skipping
 * those, or all of them with the same `msgId`s (the stream acks the stored
 * ones as duplicates).
 *
 * @category errors
 * @since 0.1.0
 */
export class PublishAllError extends Schema.TaggedError<PublishAllError>("effect-nats/JetStream/PublishAllError")(
  "PublishAllError",
  {
    index: Schema.Number,
    subject: Schema.String,
    msgId: Schema.optional(Schema.String),
    error: NatsError.NatsError,
    /** The acks of messages after `index` that came in before the stream failed, in input order. */
    ackedAfter: Schema.Array(Schema.Struct({
      index: Schema.Number,
      stream: Schema.String,
      seq: Schema.Number,
      duplicate: Schema.Boolean,
      msgId: Schema.UndefinedOr(Schema.String),
      domain: Schema.optional(Schema.UndefinedOr(Schema.String))
    }))
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    const id = this.msgId === undefined ? "" : ` (msgId ${this.msgId})`
    return `message ${this.index} on ${this.subject}${id} failed: ${this.error.message}`
  }

  /**
   * Whether republishing from this message may succeed.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return this.error.isRetryable
  }
}

/**
 * The JetStream publishing service.
 *
 * @category models
 * @since 0.1.0
 */
export interface JetStreamShape {
  /** The raw nats.js JetStream client (escape hatch). */
  readonly client: JetStreamClient
  /**
   * Publishes one message and waits for its ack. Invalid subjects and
   * oversize payloads fail before anything is sent.
   */
  readonly publish: (
    subject: string,
    payload?: Payload,
    options?: PublishOptions
  ) => Effect.Effect<PubAck, NatsError.NatsError>
  /**
   * Publishes many messages pipelined: up to `window` acks outstanding, acks
   * emitted in input order, every ack checked.
   *
   * Each ack says which input it confirms (`index`, `msgId`).
   *
   * Failure: the stream fails with `PublishAllError` at the first message (in
   * input order) that fails — after emitting the acks of every message before
   * it. Nothing more is sent once a failure is seen; the acks of messages
   * sent before it was seen (at most `window - 1` after the failed one) are
   * awaited and listed in `error.ackedAfter`. With `retry`, retryable
   * failures are sent again instead (see `PublishAllOptions.retry`). A
   * failure of the input itself comes after the acks of the messages read
   * before it.
   *
   * Stopping early (interruption, `Stream.take`...) stops sending; acks in
   * flight are ignored (every promise has its handlers, nothing leaks as an
   * unhandled rejection). An invalid `window` or `timeout` fails the stream
   * with `NatsError` (reason `InvalidArgument`) before anything is sent.
   */
  readonly publishAll: <E2 = never, R = never>(
    messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E2, R>,
    options?: PublishAllOptions
  ) => Stream.Stream<PublishedAck, PublishAllError | NatsError.NatsError | E2, R>
  /** `publishAll` as a `Sink`: ends with a summary once every message is acked. */
  readonly sink: (
    options?: PublishAllOptions
  ) => Sink.Sink<PublishSummary, OutgoingMessage, never, PublishAllError | NatsError.NatsError>
}

/**
 * Options of the JetStream context.
 *
 * @category models
 * @since 0.1.0
 */
export interface JetStreamOptions {
  /** JetStream domain (changes the API prefix). */
  readonly domain?: string | undefined
  /** API prefix, default `$JS.API`. */
  readonly apiPrefix?: string | undefined
  /**
   * Default ack timeout. Default 5 seconds (nats.js' JetStream default). An
   * ack in flight when the connection drops does not wait it out: it fails
   * at once with `Disconnected` (retryable).
   */
  readonly timeout?: Duration.Input | undefined
}

const isIterable = (u: unknown): u is Iterable<unknown> =>
  typeof u === "object" && u !== null && Symbol.iterator in u && !Stream.isStream(u)

/** A failure the schedule never sees: it is not retryable. */
class Final {
  readonly error: NatsError.NatsError
  constructor(error: NatsError.NatsError) {
    this.error = error
  }
}

/**
 * Retries the retryable failures by the schedule; the others fail at once,
 * without stepping the schedule (its taps and counters see only retries).
 */
const retrying = <A>(
  once: Effect.Effect<A, NatsError.NatsError>,
  schedule: Schedule.Schedule<unknown, NatsError.NatsError>
): Effect.Effect<A, NatsError.NatsError> =>
  once.pipe(
    Effect.catch((error) => error.isRetryable ? Effect.fail(error) : Effect.succeed(new Final(error))),
    Effect.retry(schedule),
    Effect.flatMap((a) => a instanceof Final ? Effect.fail(a.error) : Effect.succeed(a))
  )

/** A publish counted in the metrics once the stream stored it. */
const countedOnceStored = <E>(
  subject: string,
  payload: Payload | undefined,
  destination: string | undefined,
  sent: Effect.Effect<PubAck, E>
): Effect.Effect<PubAck, E> =>
  Effect.withFiber((fiber) =>
    Effect.map(sent, (ack) => {
      Metrics.countPublished(subject, Metrics.sizeOf(payload), fiber.context, destination)
      return ack
    })
  )

/**
 * Builds the service in the current context, from the `NatsClient`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (options?: JetStreamOptions) => Effect.Effect<JetStreamShape, NatsError.NatsError, NatsClient> =
  Effect.fnUntraced(function*(options: JetStreamOptions = {}) {
    const nats = yield* NatsClient
    const contextTimeout = options.timeout === undefined
      ? undefined
      : Validation.timeoutMillis("JetStream.make", options.timeout)
    if (NatsError.isNatsError(contextTimeout)) return yield* contextTimeout
    const client = jetstream(nats.connection, {
      ...(options.domain === undefined ? {} : { domain: options.domain }),
      ...(options.apiPrefix === undefined ? {} : { apiPrefix: options.apiPrefix }),
      ...(contextTimeout === undefined ? {} : { timeout: contextTimeout })
    })

    // Publishes are requests on the connection's shared inbox (`internal/jsPublish`),
    // checked by the connection's validation (one subject cache, one payload limit).
    const { requests, validation } = nats.core
    const defaultTimeout = client.getOptions().timeout ?? 5000
    const apiPrefix = client.getOptions().apiPrefix ?? "$JS.API"
    const target: JsPublish.Target = {
      mux: requests,
      operation: "JetStream.publish",
      apiPrefix,
      jetstream: nats.core.jetstream
    }

    // A leaf span (`useSpan`: the inner effect keeps the caller's context,
    // half the cost of `withSpan`, which re-parents what runs inside).
    const publish = (
      subject: string,
      payload?: Payload,
      options?: PublishOptions
    ): Effect.Effect<PubAck, NatsError.NatsError> =>
      Effect.useSpan(`publish ${options?.destination ?? subject}`, {
        kind: "producer",
        attributes: TraceContext.attributes(
          nats.connection,
          subject,
          "send",
          "publish",
          options?.msgId === undefined ? undefined : { "messaging.message.id": options.msgId }
        )
      }, (span) => {
        // the caller's trace goes with the message when the caller has one
        const init = span.parent._tag === "Some" ? TraceContext.withSpan(options?.headers, span) : options?.headers
        const hdrs = Validation.headers(init, subject, "JetStream.publish")
        if (NatsError.isNatsError(hdrs)) return Effect.fail(hdrs)
        const invalid = validation.message(subject, payload, hdrs, "JetStream.publish")
        if (invalid !== undefined) return Effect.fail(invalid)
        const timeout = options?.timeout === undefined
          ? defaultTimeout
          : Validation.timeoutMillis("JetStream.publish", options.timeout)
        if (typeof timeout !== "number") return Effect.fail(timeout)
        const withHeaders = JsPublish.headersOf(hdrs, options?.msgId, options?.expect)
        // interrupted: the ack's slot and its timer go at once
        const once = Effect.callback<PubAck, NatsError.NatsError>((resume) =>
          Effect.sync(JsPublish.send(
            target,
            subject,
            payload,
            withHeaders,
            timeout,
            (result) => resume(Effect.fromResult(result))
          ))
        )
        const sent = options?.retry === undefined ? once : retrying(once, options.retry)
        return countedOnceStored(subject, payload, options?.destination, sent)
      })

    /** The pipeline of `publishAll` / `sink`, its options checked. */
    const pipeline = <E2>(
      upstream: Pull.Pull<Arr.NonEmptyReadonlyArray<OutgoingMessage>, E2, void>,
      scope: Scope.Scope,
      options: PublishAllOptions | undefined
    ) =>
      Effect.gen(function*() {
        const operation = "JetStream.publishAll"
        const capacity = options?.window ?? defaultWindow
        const invalid = Validation.counts(operation, undefined, { window: capacity })
        if (invalid !== undefined) return yield* invalid
        const timeoutMillis = options?.timeout === undefined
          ? defaultTimeout
          : Validation.timeoutMillis(operation, options.timeout)
        if (typeof timeoutMillis !== "number") return yield* timeoutMillis
        const traceparent = yield* TraceContext.batchTraceparent(scope)
        return yield* Pipeline.make(upstream, scope, {
          traceparent,
          context: yield* Effect.context<never>(),
          core: nats.core,
          apiPrefix,
          retry: options?.retry,
          capacity,
          timeoutMillis,
          failure: (slot) =>
            new PublishAllError({
              index: slot.index,
              subject: slot.subject,
              ...(slot.msgId === undefined ? {} : { msgId: slot.msgId }),
              error: slot.error,
              ackedAfter: slot.later
            })
        })
      })

    const publishAll = <E2 = never, R = never>(
      messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E2, R>,
      options?: PublishAllOptions
    ): Stream.Stream<PublishedAck, PublishAllError | NatsError.NatsError | E2, R> => {
      const input: Stream.Stream<OutgoingMessage, E2, R> = isIterable(messages)
        ? Stream.fromIterable(messages as Iterable<OutgoingMessage>)
        : messages as Stream.Stream<OutgoingMessage, E2, R>
      return Stream.transformPull(input, (upstream, scope) => pipeline(upstream, scope, options))
    }

    const sink = (
      options?: PublishAllOptions
    ): Sink.Sink<PublishSummary, OutgoingMessage, never, PublishAllError | NatsError.NatsError> =>
      Sink.fromTransform((upstream, scope) =>
        Effect.gen(function*() {
          const pull = yield* pipeline(upstream, scope, options)
          let count = 0
          let duplicates = 0
          let first: PublishedAck | undefined
          let last: PublishedAck | undefined
          const step = pull.pipe(
            Effect.map((acks) => {
              first ??= acks[0]
              for (const ack of acks) if (ack.duplicate) duplicates++
              count += acks.length
              last = acks[acks.length - 1]
              return true
            }),
            Pull.catchDone(() => Effect.succeed(false))
          )
          while (yield* step) {
            // every ack is checked by step
          }
          const summary: PublishSummary = { count, duplicates, first, last }
          return [summary] as const
        })
      )

    return JetStream.of({ client, publish, publishAll, sink })
  })

/**
 * The JetStream publishing service.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const js = yield* JetStream.JetStream
 *   const ack = yield* js.publish("orders.created", payload, { msgId: "o-1" })
 *   yield* js.publishAll(messages, { window: 256 }).pipe(Stream.runDrain)
 * })
 * program.pipe(Effect.provide(JetStream.JetStream.layer), Effect.provide(NatsLive))
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export class JetStream extends Context.Service<JetStream, JetStreamShape>()("effect-nats/JetStream") {
  /**
   * The service on the `NatsClient`'s connection, with default options.
   *
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<JetStream, never, NatsClient> = Layer.effect(
    JetStream,
    // without options nothing can be invalid
    Effect.orDie(make())
  )

  /**
   * The service with a JetStream domain, API prefix or default timeout.
   *
   * @since 0.1.0
   */
  static readonly layerWith = (options: JetStreamOptions): Layer.Layer<JetStream, NatsError.NatsError, NatsClient> =>
    Layer.effect(JetStream, make(options))
}

/**
 * Options of `publishTyped`; a templated subject also needs its `params`.
 *
 * @category models
 * @since 0.1.0
 */
export type TypedPublishOptions<P extends Params> = NoParams extends P ?
  PublishOptions & { readonly params?: P | undefined }
  : PublishOptions & { readonly params: P }

/**
 * Encodes a value with a typed subject's codec and publishes it to JetStream
 * (a template is filled in from `params`). Encoding and subject errors fail
 * before anything is sent.
 *
 * @category publishing
 * @since 0.1.0
 */
export const publishTyped = <A, P extends Params>(
  self: TypedSubject<A, P>,
  value: A,
  ...[options]: NoParams extends P ? [options?: TypedPublishOptions<P>] : [options: TypedPublishOptions<P>]
): Effect.Effect<PubAck, NatsError.NatsError | Codec.EncodeError, JetStream> =>
  JetStream.use((js): Effect.Effect<PubAck, NatsError.NatsError | Codec.EncodeError> => {
    const encoded = encodeTyped(self, value, options?.params)
    return Result.isFailure(encoded)
      ? Effect.fail(encoded.failure)
      : js.publish(encoded.success.subject, encoded.success.payload, { ...options, destination: self.subject })
  })

/**
 * Options of `typedMessage`; a templated subject also needs its `params`.
 *
 * @category models
 * @since 0.1.0
 */
export type TypedMessageOptions<P extends Params> =
  & Omit<OutgoingMessage, "subject" | "payload">
  & (NoParams extends P ? { readonly params?: P | undefined } : { readonly params: P })

/**
 * Encodes a value with a typed subject's codec into a message for
 * `publishAll` / `sink` (synchronously; a failure names the subject).
 *
 * @category publishing
 * @since 0.1.0
 */
export const typedMessage = <A, P extends Params>(
  self: TypedSubject<A, P>,
  value: A,
  ...[options]: NoParams extends P ? [options?: TypedMessageOptions<P>] : [options: TypedMessageOptions<P>]
): Result.Result<OutgoingMessage, NatsError.NatsError | Codec.EncodeError> => {
  const encoded = encodeTyped(self, value, options?.params)
  if (Result.isFailure(encoded) || options === undefined) return encoded
  const { params: _params, ...rest } = options
  return Result.succeed({ ...rest, ...encoded.success })
}

const encodeTyped = <A, P extends Params>(
  self: TypedSubject<A, P>,
  value: A,
  params: P | undefined
): Result.Result<
  { readonly subject: string; readonly payload: Uint8Array },
  NatsError.NatsError | Codec.EncodeError
> => {
  const subject = self.template === undefined
    ? Result.succeed<string>(self.subject)
    : self.template.makeResult(params ?? ({} as P))
  if (Result.isFailure(subject)) return Result.fail(subject.failure)
  const payload = self.codec.encode(value)
  return Result.isFailure(payload)
    ? Result.fail(Codec.withSubject(payload.failure, subject.success))
    : Result.succeed({ subject: subject.success, payload: payload.success })
}
