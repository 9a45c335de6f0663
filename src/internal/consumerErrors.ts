/**
 * Maps the failures of nats.js pull consumers (`consume`, `fetch`, `next`)
 * into `NatsError` reasons: pull status errors (409 consumer deleted, 503 no
 * responders), missed heartbeats, and "consumer / stream not found" aborts.
 *
 * @internal
 */
import { JetStreamError } from "@nats-io/jetstream"
import { JetStreamStatusError } from "@nats-io/jetstream/internal"
import * as NatsError from "../schemas/NatsError.ts"
import { consumerNotFound, jetStreamApi, streamNotFound, timeout } from "./errors.ts"
import { jsFromUnknown } from "./jsErrors.ts"

export interface ConsumerContext {
  readonly operation: string
  readonly stream: string
  readonly consumer: string
  readonly timeoutMillis?: number | undefined
}

const describe = (ctx: ConsumerContext) => `${ctx.operation} on consumer ${ctx.consumer} of stream ${ctx.stream}`

/** A `NatsError` for a failure of a pull consumer operation. */
export const consumerFromUnknown = (cause: unknown, ctx: ConsumerContext): NatsError.NatsError => {
  if (NatsError.isNatsError(cause)) return cause
  if (cause instanceof JetStreamStatusError) {
    const description = cause.message.toLowerCase()
    if (cause.code === 409 && description.includes("consumer deleted")) {
      return consumerNotFound(ctx.operation, ctx.stream, ctx.consumer, cause)
    }
    if (cause.code === 409 && description.includes("stream deleted")) {
      return streamNotFound(ctx.operation, ctx.stream, cause)
    }
    if (cause.code === 503 || cause.code === 408) {
      return timeout(ctx.operation, `${describe(ctx)} got no answer (${cause.code} ${cause.message})`, { cause })
    }
    return jetStreamApi(ctx.operation, `${describe(ctx)}: ${cause.code} ${cause.message}`, {
      code: cause.code,
      errCode: 0
    }, { cause })
  }
  if (cause instanceof JetStreamError && cause.message.toLowerCase().includes("heartbeats missed")) {
    return timeout(ctx.operation, `${describe(ctx)}: the server stopped answering (heartbeats missed)`, {
      timeoutMillis: ctx.timeoutMillis,
      cause
    })
  }
  if (cause instanceof Error) {
    // `consume` with `abort_on_missing_resource` stops with the error of its
    // consumer info check.
    const text = cause.message.toLowerCase()
    if (text === "consumer not found") return consumerNotFound(ctx.operation, ctx.stream, ctx.consumer, cause)
    if (text === "stream not found") return streamNotFound(ctx.operation, ctx.stream, cause)
  }
  return jsFromUnknown(cause, { operation: ctx.operation, stream: ctx.stream, consumer: ctx.consumer })
}

/** The stalls (see `stalled`): told apart by identity, not by their text. */
const stalls = new WeakSet<NatsError.NatsError>()

/** A continuous pull that got neither a message nor a heartbeat for `millis` (a `Timeout`). */
export const stalled = (ctx: ConsumerContext, millis: number): NatsError.NatsError => {
  const error = timeout(
    ctx.operation,
    `${describe(ctx)}: no message and no heartbeat for ${millis} ms; pulling again`,
    { timeoutMillis: millis }
  )
  stalls.add(error)
  return error
}

/** Whether the error is a stalled pull's. */
export const isStalled = (error: unknown): boolean => NatsError.isNatsError(error) && stalls.has(error)

/** Whether the error says the consumer or its stream is missing. */
export const isMissingResource = (error: unknown): boolean =>
  NatsError.isNatsError(error) &&
  (error.reason._tag === "ConsumerNotFound" || error.reason._tag === "StreamNotFound")
