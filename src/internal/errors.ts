/**
 * Maps nats.js errors into `NatsError` reasons.
 *
 * @internal
 */
import { errors as natsErrors } from "@nats-io/nats-core"
import * as E from "../schemas/NatsError.ts"

interface Context {
  readonly operation: string
  readonly subject?: string | undefined
  readonly timeoutMillis?: number | undefined
}

const fields = (ctx: Context, message: string, cause: unknown) =>
  ctx.subject === undefined
    ? { operation: ctx.operation, message, cause }
    : { operation: ctx.operation, subject: ctx.subject, message, cause }

const timeout = (f: ReturnType<typeof fields>, ctx: Context) =>
  new E.Timeout({
    ...f,
    message: `${ctx.operation}${ctx.subject === undefined ? "" : ` on ${ctx.subject}`} timed out${
      ctx.timeoutMillis === undefined ? "" : ` after ${ctx.timeoutMillis} ms`
    }`,
    timeoutMillis: ctx.timeoutMillis
  })

const messageOf = (u: unknown): string => u instanceof Error ? u.message : String(u)

/**
 * The reason for a raw nats.js failure. Never loses the original: it is kept
 * as `cause`.
 */
export const reasonFromUnknown = (cause: unknown, ctx: Context): E.NatsErrorReason => {
  if (E.isNatsErrorReason(cause)) return cause
  if (E.isNatsError(cause)) return cause.reason
  const message = messageOf(cause)
  const f = fields(ctx, message, cause)
  if (cause instanceof natsErrors.RequestError) {
    if (cause.isNoResponders()) {
      return new E.NoResponders({ ...f, message: `no responders for ${ctx.subject ?? "the request"}` })
    }
    const inner = cause.cause
    if (inner instanceof natsErrors.TimeoutError) return timeout(f, ctx)
    if (inner !== undefined) return reasonFromUnknown(inner, ctx)
  }
  if (cause instanceof natsErrors.NoRespondersError) {
    return new E.NoResponders({ ...f, message: `no responders for ${ctx.subject ?? cause.subject}` })
  }
  if (cause instanceof natsErrors.TimeoutError) return timeout(f, ctx)
  if (cause instanceof natsErrors.ClosedConnectionError) return new E.ConnectionClosed(f)
  if (cause instanceof natsErrors.DrainingConnectionError) return new E.Draining(f)
  if (cause instanceof natsErrors.AuthorizationError || cause instanceof natsErrors.UserAuthenticationExpiredError) {
    return new E.AuthorizationViolation(f)
  }
  if (cause instanceof natsErrors.PermissionViolationError) {
    return new E.PermissionViolation({
      ...f,
      subject: cause.subject,
      ...(cause.queue === undefined ? {} : { queue: cause.queue })
    })
  }
  if (cause instanceof natsErrors.InvalidSubjectError) return new E.InvalidSubject(f)
  if (cause instanceof natsErrors.InvalidArgumentError) {
    if (message.includes("max_payload")) return new E.MaxPayloadExceeded({ ...f, size: -1, maxPayload: -1 })
    return new E.InvalidArgument(f)
  }
  if (cause instanceof natsErrors.ConnectionError) {
    return /refused|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/i.test(message) ? new E.ConnectionRefused(f) : new E.Unknown(f)
  }
  if (
    cause instanceof Error && "code" in cause &&
    (cause.code === "ECONNREFUSED" || cause.code === "ECONNRESET" || cause.code === "ENOTFOUND")
  ) {
    return new E.ConnectionRefused(f)
  }
  return new E.Unknown(f)
}

/** A `NatsError` for a raw nats.js failure. */
export const fromUnknown = (cause: unknown, ctx: Context): E.NatsError =>
  E.isNatsError(cause) ? cause : new E.NatsError({ reason: reasonFromUnknown(cause, ctx) })
