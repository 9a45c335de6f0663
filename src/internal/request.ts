/**
 * Core request/reply: `request` over the connection's shared inbox (a reply
 * carrying the NATS service error headers fails with `ServiceError`), and
 * `requestMany` streaming every reply.
 *
 * @internal
 */
import type { Msg, MsgHdrs, Payload } from "@nats-io/nats-core"
import { Effect, Stream } from "effect"
import * as Headers from "../schemas/Headers.ts"
import * as NatsError from "../schemas/NatsError.ts"
import type { RequestManyOptions, RequestOptions } from "../services/NatsClient.ts"
import type { NatsCore } from "./core.ts"
import { millis } from "./duration.ts"
import { fromUnknown, noResponders, serviceError } from "./errors.ts"
import * as Metrics from "./metrics.ts"
import * as TraceContext from "./traceContext.ts"
import { counts, durations, headers as checkedHeaders, timeoutMillis } from "./validation.ts"

/** Default timeout of a request, in milliseconds. */
const REQUEST_TIMEOUT = 5000

/** The subject, headers and size of a request, checked; the headers converted (or why the request may not go). */
const prepare = (
  core: NatsCore,
  operation: string,
  subject: string,
  payload: Payload | undefined,
  headers: Headers.HeadersInit | undefined
): MsgHdrs | undefined | NatsError.NatsError => {
  const invalid = core.validation.subject(subject, operation)
  if (invalid !== undefined) return invalid
  const hdrs = checkedHeaders(headers, subject, operation)
  if (NatsError.isNatsError(hdrs)) return hdrs
  return core.validation.size(subject, payload, hdrs, operation) ?? hdrs
}

/** The failure a reply reports in its service error headers, if any. */
const serviceFailure = (subject: string, msg: Msg): NatsError.NatsError | undefined => {
  const failed = Headers.serviceErrorOf(msg.headers)
  return failed === undefined ? undefined : serviceError("request", subject, failed.code, failed.message)
}

/**
 * Sends a request and waits for the first reply (a leaf span: `useSpan` is
 * cheaper than `withSpan`, which re-parents what runs inside). Interrupting
 * it drops its reply slot and timer at once.
 */
export const request = (
  core: NatsCore,
  subject: string,
  payload: Payload | undefined,
  options: RequestOptions | undefined
): Effect.Effect<Msg, NatsError.NatsError> =>
  Effect.useSpan(`send ${subject}`, {
    kind: "client",
    attributes: TraceContext.attributes(core.connection, subject, "send", "request")
  }, (span) => {
    // the caller's trace goes with the request when the caller has one
    const headers = span.parent._tag === "Some" ? TraceContext.withSpan(options?.headers, span) : options?.headers
    const prepared = prepare(core, "request", subject, payload, headers)
    if (NatsError.isNatsError(prepared)) return Effect.fail(prepared)
    // a number (the default included) is milliseconds already: no Duration parsed per call
    const timeout = timeoutMillis("request", options?.timeout ?? REQUEST_TIMEOUT)
    if (typeof timeout !== "number") return Effect.fail(timeout)
    return Effect.withFiber((fiber) =>
      Effect.callback<Msg, NatsError.NatsError>((resume) => {
        const started = performance.now()
        // sent now; the Effect returned cancels it (on interruption)
        return Effect.sync(core.requests.send("request", subject, payload, prepared, timeout, (outcome) => {
          switch (outcome._tag) {
            case "Reply": {
              Metrics.requestDurationOf(Metrics.familyOf(subject)).updateUnsafe(
                performance.now() - started,
                fiber.context
              )
              const failed = serviceFailure(subject, outcome.msg)
              return resume(failed === undefined ? Effect.succeed(outcome.msg) : Effect.fail(failed))
            }
            case "NoResponders":
              return resume(Effect.fail(noResponders("request", subject)))
            case "Failed":
              return resume(Effect.fail(outcome.error))
          }
        }))
      })
    )
  })

/** Sends a request and streams every reply (nats.js' `requestMany`). */
export const requestMany = (
  core: NatsCore,
  subject: string,
  payload: Payload | undefined,
  options: RequestManyOptions | undefined
): Stream.Stream<Msg, NatsError.NatsError> =>
  Stream.unwrap(Effect.suspend(() => {
    const prepared = prepare(core, "requestMany", subject, payload, options?.headers)
    if (NatsError.isNatsError(prepared)) return Effect.fail(prepared)
    const invalid = counts("requestMany", subject, { maxMessages: options?.maxMessages }) ??
      durations("requestMany", { maxWait: options?.maxWait, stall: options?.stall })
    if (invalid !== undefined) return Effect.fail(invalid)
    const strategy = options?.maxMessages !== undefined ? "count" : options?.stall !== undefined ? "stall" : "timer"
    const failed = (cause: unknown) => fromUnknown(cause, { operation: "requestMany", subject })
    return Effect.tryPromise({
      try: () =>
        core.connection.requestMany(subject, payload, {
          strategy,
          maxWait: millis(options?.maxWait ?? REQUEST_TIMEOUT),
          ...(options?.maxMessages === undefined ? {} : { maxMessages: options.maxMessages }),
          ...(options?.stall === undefined ? {} : { stall: millis(options.stall) }),
          ...(prepared === undefined ? {} : { headers: prepared })
        }),
      catch: failed
    }).pipe(Effect.map((replies) => Stream.fromAsyncIterable(replies, failed)))
  }))
