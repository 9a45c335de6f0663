/**
 * Trace context in message headers (W3C `traceparent`, `tracestate`), and
 * the spans on both sides of a message, by the OpenTelemetry messaging
 * conventions: `publish {subject}` (producer) and `send {subject}` (client,
 * a request) carry their span in the message; `process {subject}` (consumer,
 * or server for a responder) runs the handling of a message as a child of
 * that span, or linked to it.
 *
 * **Zero cost without a span.** A producer adds its span and the headers
 * only when the caller has a span (`fiber.cache.span`: one field read);
 * without one nothing is allocated and no header is added. A consumer makes
 * a span only for a message that carries one or when a tracer is installed
 * (the Processor: when a tracer is installed where it is made).
 *
 * @internal
 */
import type { MsgHdrs } from "@nats-io/nats-core"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { Context, Effect, References, Scope, Tracer } from "effect"
import * as Headers from "../schemas/Headers.ts"
import * as RawHeaders from "./rawHeaders.ts"

/** The W3C header (a caller's `tracestate` header goes as it is). */
export const TRACEPARENT = "traceparent"

/** `traceparent` for a span (version 00). */
export const format = (span: { readonly traceId: string; readonly spanId: string; readonly sampled: boolean }) =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** Whether `value[from, to)` is lower-case hex; with `nonZero`, not all zeros either. */
const isHex = (value: string, from: number, to: number, nonZero: boolean): boolean => {
  let any = !nonZero
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i)
    if (c === 48) continue
    if (!((c > 48 && c <= 57) || (c >= 97 && c <= 102))) return false
    any = true
  }
  return any
}

/** Whether `value[from, ...)` holds no line terminator (what a regular expression's `.` refuses). */
const isOneLine = (value: string, from: number): boolean => {
  for (let i = from; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 10 || c === 13 || c === 0x2028 || c === 0x2029) return false
  }
  return true
}

/**
 * The span a `traceparent` names (`vv-<32 hex>-<16 hex>-<2 hex flags>`, lower-case, a
 * later version's fields after another `-` allowed); `undefined` when it is
 * absent or malformed (all-zero ids, version ff). Read by position, without
 * a regular expression: every traced message pays it.
 */
export const parse = (value: string | undefined): Tracer.ExternalSpan | undefined => {
  if (value === undefined) return undefined
  const v = value.trim()
  if (v.length < 55 || (v.length > 55 && (v.charCodeAt(55) !== 45 || !isOneLine(v, 56)))) return undefined
  if (v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return undefined
  if (!isHex(v, 0, 2, false) || !isHex(v, 53, 55, false) || v.startsWith("ff")) return undefined
  if (!isHex(v, 3, 35, true) || !isHex(v, 36, 52, true)) return undefined
  return Tracer.externalSpan({
    traceId: v.slice(3, 35),
    spanId: v.slice(36, 52),
    sampled: (Number.parseInt(v.slice(53, 55), 16) & 1) === 1
  })
}

/** The producer's span a message carries, if any (read from its raw headers: see `rawHeaders`). */
export const fromMessage = (message: RawHeaders.Carrier): Tracer.ExternalSpan | undefined =>
  parse(RawHeaders.get(message, TRACEPARENT))

/**
 * The message's headers with the span's `traceparent` (the caller's other
 * headers, `tracestate` included, kept as they are): a copy, the caller's
 * headers untouched. A `traceparent` the caller set is kept; headers that
 * are not valid are returned as they are, for the send to refuse.
 */
export const withSpan = (
  init: Headers.HeadersInit | undefined,
  span: { readonly traceId: string; readonly spanId: string; readonly sampled: boolean }
): Headers.HeadersInit => {
  if (init !== undefined && Headers.validate(init) !== undefined) return init
  const out = natsHeaders()
  if (init !== undefined) {
    const given = Headers.fromInit(init)
    for (const [name, values] of given) for (const value of values) out.append(name, value)
    if (given.has(TRACEPARENT)) return out
  }
  out.set(TRACEPARENT, format(span))
  return out
}

/**
 * The batch span of a `publishAll` run by a caller that has a span (ended
 * with `scope`): its `traceparent`, for every message; `undefined` when the
 * caller has no span.
 */
export const batchTraceparent = (scope: Scope.Scope): Effect.Effect<string | undefined> =>
  Effect.withFiber((fiber) =>
    fiber.cache.span === undefined
      ? Effect.succeed(undefined)
      : Effect.map(
        Scope.provide(Effect.makeSpanScoped("publish", { kind: "producer", attributes: batchAttributes }), scope),
        format
      )
  )

/** The attributes of a `publishAll` batch span. */
export const batchAttributes: Record<string, unknown> = {
  "messaging.system": "nats",
  "messaging.operation.type": "send",
  "messaging.operation.name": "publish"
}

/** `headers` (made when there are none) with `traceparent` unless they have one. */
export const addTraceparent = (headers: MsgHdrs | undefined, traceparent: string): MsgHdrs => {
  const h = headers ?? natsHeaders()
  if (!h.has(TRACEPARENT)) h.set(TRACEPARENT, traceparent)
  return h
}

/** How a consumer's span relates to the producer's: its child (default), or a new trace linked to it. */
export type Relation = "child" | "link"

/** Options of a consumer-side span. */
export interface ProcessOptions {
  readonly kind: "consumer" | "server"
  /** Built only when a span is made. */
  readonly attributes: () => Record<string, unknown>
  readonly relation?: Relation | undefined
}

/**
 * Runs the handling of a message in a span `name`: the child of the span
 * the message carries (or linked to it, with `relation: "link"`), else of
 * whatever span is current. Without trace context in the message and
 * without a tracer installed, no span is made (the hot path pays one field
 * read).
 */
export const process = <A, E, R>(
  name: string,
  message: RawHeaders.Carrier,
  options: ProcessOptions,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => processWith(name, message, options, () => effect)

/** `process`, the handling told whether it runs in a span (to add spans of its own, such as the ack's). */
export const processWith = <A, E, R>(
  name: string,
  message: RawHeaders.Carrier,
  options: ProcessOptions,
  handling: (traced: boolean) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const producer = fromMessage(message)
    if (producer === undefined && fiber.cache.tracer === undefined) return handling(false)
    const attributes = options.attributes()
    const spanOptions = producer === undefined
      ? { kind: options.kind, attributes }
      : options.relation === "link"
      ? {
        kind: options.kind,
        attributes,
        root: true,
        links: [{ span: producer, attributes: {} }]
      }
      : { kind: options.kind, attributes, parent: producer }
    return Effect.useSpan(name, spanOptions, (span) => inSpan(handling(true), span))
  })

/** A span per message captures no stack. */
const noStack = () => undefined

/**
 * `effect` run as the child of `span`: what `Effect.withSpan` provides (the
 * parent span, and the stack frame that names it in a failure's trace), in
 * one update of the fiber's context instead of two (each a new context
 * whose fiber cache is built again: a fifth of a message span's cost).
 */
const inSpan = <A, E, R>(effect: Effect.Effect<A, E, R>, span: Tracer.Span): Effect.Effect<A, E, R> =>
  Effect.updateContext(
    effect,
    (context: Context.Context<R>) =>
      Context.add(Context.add(context, Tracer.ParentSpan, span), References.CurrentStackFrame, {
        name: span.name,
        stack: noStack,
        parent: Context.get(context, References.CurrentStackFrame)
      })
  )

/** A settlement (`ack`, `nak`, `term`) in a span of its own (kind consumer, operation type `settle`). */
export const settle = <A, E, R>(name: string, subject: string, settling: () => Effect.Effect<A, E, R>) =>
  Effect.useSpan(name, {
    kind: "consumer",
    attributes: {
      "messaging.system": "nats",
      "messaging.destination.name": subject,
      "messaging.operation.type": "settle",
      "messaging.operation.name": name
    }
  }, settling)

/**
 * The conventions' attributes of an operation on a subject:
 * `messaging.system`, `messaging.destination.name`, the operation's type
 * and name, and the server's address and port.
 */
export const attributes = (
  connection: { readonly info?: { readonly host?: string; readonly port?: number } | undefined },
  subject: string,
  type: "send" | "receive" | "process" | "settle",
  name: string,
  extra?: Record<string, unknown>
): Record<string, unknown> => ({
  "messaging.system": "nats",
  "messaging.destination.name": subject,
  "messaging.operation.type": type,
  "messaging.operation.name": name,
  ...(connection.info?.host === undefined ? {} : { "server.address": connection.info.host }),
  ...(connection.info?.port === undefined ? {} : { "server.port": connection.info.port }),
  ...extra
})

/** The caller's current span, if any: one field of the fiber's cache. */
export const currentSpan = <A, E, R>(f: (span: Tracer.AnySpan | undefined) => Effect.Effect<A, E, R>) =>
  Effect.withFiber((fiber) => f(fiber.cache.span))
