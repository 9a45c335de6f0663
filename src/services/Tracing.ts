/**
 * Trace context across the broker, for the messages a program reads itself
 * (`subscribe`, `consume`, `fetch`): the `Processor` and responders (`serve`,
 * `Rpc`) do this for each message on their own.
 *
 * A producer under a span (`publish`, `publishAll`, `request`,
 * `JetStream.publish` / `publishAll`) sends its span in the message's
 * `traceparent` header (W3C); without a span it adds nothing. `process` runs
 * the handling of a message in a `process {subject}` span (kind consumer)
 * that is the child of that span, so one trace goes from the producer to
 * the consumer's work (the conventions' default for one message handled at
 * a time), or, with `relation: "link"`, in a new trace linked to it.
 *
 * @since 0.1.0
 */
import type { MsgHdrs } from "@nats-io/nats-core"
import type { Effect, Tracer } from "effect"
import { Option } from "effect"
import * as TraceContext from "../internal/traceContext.ts"

/**
 * What a message needs to be traced: a core `Msg`, a `JsMsg`, a `JsEnvelope`
 * or a typed envelope all have it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Traced {
  readonly subject: string
  readonly headers?: MsgHdrs | undefined
}

/**
 * Options of `process`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProcessOptions {
  /** The producer's span as parent (default), or a link from a new trace. */
  readonly relation?: "child" | "link" | undefined
  /** More attributes for the span. */
  readonly attributes?: Record<string, unknown> | undefined
}

/**
 * The producer's span a message carries (its `traceparent`), if any.
 *
 * @category accessors
 * @since 0.1.0
 */
export const producerSpan = (message: Traced): Option.Option<Tracer.ExternalSpan> =>
  Option.fromNullishOr(TraceContext.fromMessage(message))

/**
 * Runs `effect` as the processing of `message`: in a `process {subject}`
 * span (kind consumer), the child of the producer's span (or linked to it).
 * Without trace context in the message and without a tracer installed, it
 * runs `effect` as it is.
 *
 * @example
 * ```ts
 * yield* nats.subscribe("orders.>").pipe(
 *   Stream.runForEach((msg) => handle(msg).pipe(Tracing.process(msg)))
 * )
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const process =
  (message: Traced, options?: ProcessOptions) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    TraceContext.process(`process ${message.subject}`, message, {
      kind: "consumer",
      attributes: () => ({
        "messaging.system": "nats",
        "messaging.destination.name": message.subject,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        ...options?.attributes
      }),
      relation: options?.relation
    }, effect)

/**
 * The `traceparent` header value of a span (W3C, version 00), for a message
 * sent some other way.
 *
 * @category formatting
 * @since 0.1.0
 */
export const traceparent = (span: Tracer.AnySpan): string => TraceContext.format(span)
