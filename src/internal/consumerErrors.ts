/**
 * Maps the failures of nats.js pull consumers (`consume`, `fetch`, `next`)
 * into `NatsError` reasons: pull status errors (409 consumer deleted, 503 no
 * responders), missed heartbeats, and "consumer / stream not found" aborts.
 *
 * @internal
 */
import { JetStreamError } from "@nats-io/jetstream"
import { JetStreamStatusError } from "@nats-io/jetstream/internal"
import * as E from "../schemas/NatsError.ts"
import { jsFromUnknown } from "./jsErrors.ts"

export interface ConsumerContext {
  readonly operation: string
  readonly stream: string
  readonly consumer: string
  readonly timeoutMillis?: number | undefined
}

const err = (reason: E.NatsErrorReason) => new E.NatsError({ reason })

export const consumerNotFound = (ctx: ConsumerContext, cause?: unknown): E.NatsError =>
  err(
    new E.ConsumerNotFound({
      operation: ctx.operation,
      stream: ctx.stream,
      consumer: ctx.consumer,
      message: `consumer ${ctx.consumer} of stream ${ctx.stream} not found`,
      cause
    })
  )

export const streamNotFound = (ctx: ConsumerContext, cause?: unknown): E.NatsError =>
  err(
    new E.StreamNotFound({
      operation: ctx.operation,
      stream: ctx.stream,
      message: `stream ${ctx.stream} not found`,
      cause
    })
  )

/** A `NatsError` for a failure of a pull consumer operation. */
export const consumerFromUnknown = (cause: unknown, ctx: ConsumerContext): E.NatsError => {
  if (E.isNatsError(cause)) return cause
  if (cause instanceof JetStreamStatusError) {
    const description = cause.message.toLowerCase()
    if (cause.code === 409 && description.includes("consumer deleted")) return consumerNotFound(ctx, cause)
    if (cause.code === 409 && description.includes("stream deleted")) return streamNotFound(ctx, cause)
    if (cause.code === 503 || cause.code === 408) {
      return err(
        new E.Timeout({
          operation: ctx.operation,
          message:
            `${ctx.operation} on consumer ${ctx.consumer} of stream ${ctx.stream} got no answer (${cause.code} ${cause.message})`,
          cause
        })
      )
    }
    return err(
      new E.JetStreamApi({
        operation: ctx.operation,
        message: `${ctx.operation} on consumer ${ctx.consumer} of stream ${ctx.stream}: ${cause.code} ${cause.message}`,
        code: cause.code,
        errCode: 0,
        cause
      })
    )
  }
  if (cause instanceof JetStreamError && !(cause instanceof JetStreamStatusError)) {
    const text = cause.message.toLowerCase()
    if (text.includes("heartbeats missed")) {
      return err(
        new E.Timeout({
          operation: ctx.operation,
          message:
            `${ctx.operation} on consumer ${ctx.consumer} of stream ${ctx.stream}: the server stopped answering (heartbeats missed)`,
          ...(ctx.timeoutMillis === undefined ? {} : { timeoutMillis: ctx.timeoutMillis }),
          cause
        })
      )
    }
  }
  if (cause instanceof Error) {
    // `consume` with `abort_on_missing_resource` stops with the error of its
    // consumer info check.
    const text = cause.message.toLowerCase()
    if (text === "consumer not found") return consumerNotFound(ctx, cause)
    if (text === "stream not found") return streamNotFound(ctx, cause)
  }
  return jsFromUnknown(cause, { operation: ctx.operation, stream: ctx.stream, consumer: ctx.consumer })
}

/** Whether the error says the consumer or its stream is missing. */
export const isMissingResource = (error: unknown): boolean =>
  E.isNatsError(error) && (error.reason._tag === "ConsumerNotFound" || error.reason._tag === "StreamNotFound")
