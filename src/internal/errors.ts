/**
 * Every `NatsError` of the library is built here: one constructor per reason
 * family, and the mapping of raw nats.js failures into reasons.
 *
 * @internal
 */
import { errors as natsErrors } from "@nats-io/nats-core"
import * as NatsError from "../schemas/NatsError.ts"

/**
 * The fields of a reason without those that are `undefined` (optional fields
 * are then absent, not present as `undefined`: errors print and compare as
 * their fields say), text fields as strings (building an error never throws).
 */
export const defined = <T extends object>(fields: T): T => {
  const record = fields as Record<string, unknown>
  for (const key of Object.keys(record)) {
    const value = record[key]
    if (value === undefined) delete record[key]
    // a subject (or name) that came from plain JavaScript as another type: the error still builds
    else if (textFields.has(key) && typeof value !== "string") record[key] = String(value)
  }
  return fields
}

/** The fields of reasons that are strings (their Schemas check it when an error is built). */
const textFields = new Set(["message", "operation", "subject", "queue", "stream", "consumer", "field"])

/** A `NatsError` with the given reason. */
export const natsError = (reason: NatsError.NatsErrorReason): NatsError.NatsError =>
  new NatsError.NatsError(defined({ reason }))

/** What every reason may carry besides its message. */
export interface Details {
  readonly subject?: string | undefined
  readonly cause?: unknown
}

/** An invalid subject or pattern; `problem` is the validator's reason, which names the subject. */
export const invalidSubject = (operation: string, subject: string, problem: string): NatsError.NatsError =>
  natsError(new NatsError.InvalidSubject(defined({ operation, subject, message: problem })))

/** An invalid argument or option. */
export const invalidArgument = (operation: string, message: string, details?: Details): NatsError.NatsError =>
  natsError(
    new NatsError.InvalidArgument(defined({ operation, message, subject: details?.subject, cause: details?.cause }))
  )

/** A message larger than the server's `max_payload`. */
export const maxPayloadExceeded = (
  operation: string,
  subject: string,
  size: number,
  maxPayload: number
): NatsError.NatsError =>
  natsError(
    new NatsError.MaxPayloadExceeded(defined({
      operation,
      subject,
      size,
      maxPayload,
      message: `message of ${size} bytes exceeds the server's max_payload of ${maxPayload} bytes`
    }))
  )

/** The connection closed for good. */
export const connectionClosed = (operation: string, message: string, details?: Details): NatsError.NatsError =>
  natsError(
    new NatsError.ConnectionClosed(defined({ operation, message, subject: details?.subject, cause: details?.cause }))
  )

/** The connection dropped before the reply of a request came. */
export const disconnected = (operation: string, subject: string): NatsError.NatsError =>
  natsError(
    new NatsError.Disconnected(defined({
      operation,
      subject,
      message: `the connection dropped before the reply on ${subject} came (the request may have been processed)`
    }))
  )

/** Nobody listens on the subject of a request. */
export const noResponders = (operation: string, subject: string, cause?: unknown): NatsError.NatsError =>
  natsError(new NatsError.NoResponders(defined({ operation, subject, message: `no responders for ${subject}`, cause })))

/** Something did not answer in time. */
export const timeout = (
  operation: string,
  message: string,
  details?: Details & { readonly timeoutMillis?: number | undefined }
): NatsError.NatsError =>
  natsError(
    new NatsError.Timeout(defined({
      operation,
      message,
      subject: details?.subject,
      timeoutMillis: details?.timeoutMillis,
      cause: details?.cause
    }))
  )

/** A responder answered with the NATS service error headers. */
export const serviceError = (operation: string, subject: string, code: number, text: string): NatsError.NatsError =>
  natsError(
    new NatsError.ServiceError(defined({
      operation,
      subject,
      code,
      message: `responder on ${subject} failed (${code}): ${text}`
    }))
  )

/** A JetStream publish that no stream captures. */
export const noStreamForSubject = (operation: string, subject: string, cause?: unknown): NatsError.NatsError =>
  natsError(
    new NatsError.NoStreamForSubject(defined({
      operation,
      subject,
      message: `no stream captures the subject ${subject}`,
      cause
    }))
  )

/** A JetStream call to a server without JetStream. */
export const jetStreamNotEnabled = (operation: string, subject: string): NatsError.NatsError =>
  natsError(
    new NatsError.JetStreamNotEnabled(defined({
      operation,
      subject,
      message: "JetStream is not enabled on the server"
    }))
  )

/**
 * A JetStream publish nobody answered although a stream may capture its
 * subject (`stream`, when the JetStream API named it): its stream has no
 * leader, during an election say. `NoResponders`, retryable.
 */
export const streamDidNotAnswer = (
  operation: string,
  subject: string,
  stream: string | undefined,
  cause?: unknown,
  why?: string | undefined
): NatsError.NatsError =>
  natsError(
    new NatsError.NoResponders(defined({
      operation,
      subject,
      message: stream !== undefined
        ? `stream ${stream} captures ${subject} but did not answer: it has no leader (an election?)`
        : why !== undefined
        ? `no stream answered the publish to ${subject}, and JetStream could not say whether one captures it: ${why}`
        : `no stream answered the publish to ${subject}, and JetStream could not say whether one captures it (no leader?)`,
      cause
    }))
  )

/** A failure that fits no other reason. */
export const unknown = (operation: string, message: string, cause?: unknown): NatsError.NatsError =>
  natsError(new NatsError.Unknown(defined({ operation, message, cause })))

/** A subscription whose bounded buffer overflowed under the `"fail"` policy. */
export const slowConsumer = (operation: string, subject: string, bufferSize: number, message: string) =>
  natsError(new NatsError.SlowConsumer(defined({ operation, subject, bufferSize, message })))

/** A missing stream. */
export const streamNotFound = (operation: string, stream: string, cause?: unknown): NatsError.NatsError =>
  natsError(new NatsError.StreamNotFound(defined({ operation, stream, message: `stream ${stream} not found`, cause })))

/** A missing consumer. */
export const consumerNotFound = (
  operation: string,
  stream: string,
  consumer: string,
  cause?: unknown
): NatsError.NatsError =>
  natsError(
    new NatsError.ConsumerNotFound(defined({
      operation,
      stream,
      consumer,
      message: `consumer ${consumer} of stream ${stream} not found`,
      cause
    }))
  )

/** A refused JetStream API request. */
export const jetStreamApi = (
  operation: string,
  message: string,
  codes: { readonly code: number; readonly errCode: number; readonly field?: string | undefined },
  details?: Details
): NatsError.NatsError =>
  natsError(
    new NatsError.JetStreamApi(defined({
      operation,
      message,
      code: codes.code,
      errCode: codes.errCode,
      field: codes.field,
      subject: details?.subject,
      cause: details?.cause
    }))
  )

// -----------------------------------------------------------------------------
// Mapping raw nats.js failures
// -----------------------------------------------------------------------------

/** Where a raw failure happened: names the operation (and subject) in the mapped reason. */
export interface Context {
  readonly operation: string
  readonly subject?: string | undefined
  readonly timeoutMillis?: number | undefined
}

const fields = (ctx: Context, message: string, cause: unknown) => ({
  operation: ctx.operation,
  subject: ctx.subject,
  message,
  cause
})

const timedOut = (ctx: Context, cause: unknown) =>
  new NatsError.Timeout(defined({
    ...fields(ctx, "", cause),
    message: `${ctx.operation}${ctx.subject === undefined ? "" : ` on ${ctx.subject}`} timed out${
      ctx.timeoutMillis === undefined ? "" : ` after ${ctx.timeoutMillis} ms`
    }`,
    timeoutMillis: ctx.timeoutMillis
  }))

const messageOf = (u: unknown): string => u instanceof Error ? u.message : String(u)

/** Node's codes of certificate verification failures (OpenSSL's names). */
const certificateCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
  "ERR_TLS_CERT_ALTNAME_INVALID"
])

/** OpenSSL's message made readable: the alert the peer sent, with what it usually means. */
const tlsWords = (code: string, message: string): string => {
  const alert = /alert ([a-z ]+?)(?::|$)/i.exec(message)?.[1]
  if (alert === undefined) return message
  const meaning = /bad certificate|certificate required|unknown ca/i.test(alert)
    ? " (the server requires a client certificate it trusts)"
    : ""
  return `the server ended the handshake with the alert "${alert}"${meaning} [${code}]`
}

/** The TLS layer's words when a failure (or what caused it) is a TLS one. */
const tlsFailure = (u: unknown): string | undefined => {
  for (let cause = u, depth = 0; cause instanceof Error && depth < 4; depth++) {
    const code = (cause as { readonly code?: unknown }).code
    if (
      typeof code === "string" &&
      (certificateCodes.has(code) || code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS"))
    ) return tlsWords(code, cause.message)
    cause = (cause as { readonly cause?: unknown }).cause
  }
  return undefined
}

/**
 * The limit a server's `-ERR` names: `maximum account active connections
 * exceeded`, `maximum connections exceeded`, `maximum subscriptions exceeded`
 * (nats-server's words).
 */
const limitOf = (message: string): "connections" | "subscriptions" | undefined =>
  /maximum (?:account )?(?:active )?connections exceeded/i.test(message)
    ? "connections"
    : /maximum subscriptions exceeded/i.test(message)
    ? "subscriptions"
    : undefined

/**
 * The reason for a raw nats.js failure. Never loses the original: it is kept
 * as `cause`.
 */
export const reasonFromUnknown = (cause: unknown, ctx: Context): NatsError.NatsErrorReason => {
  if (NatsError.isNatsErrorReason(cause)) return cause
  if (NatsError.isNatsError(cause)) return cause.reason
  const message = messageOf(cause)
  const f = fields(ctx, message, cause)
  if (cause instanceof natsErrors.RequestError) {
    if (cause.isNoResponders()) {
      return new NatsError.NoResponders(defined({ ...f, message: `no responders for ${ctx.subject ?? "the request"}` }))
    }
    const inner = cause.cause
    if (inner instanceof natsErrors.TimeoutError) return timedOut(ctx, cause)
    if (inner !== undefined) return reasonFromUnknown(inner, ctx)
  }
  if (cause instanceof natsErrors.NoRespondersError) {
    return new NatsError.NoResponders(defined({ ...f, message: `no responders for ${ctx.subject ?? cause.subject}` }))
  }
  if (cause instanceof natsErrors.TimeoutError) return timedOut(ctx, cause)
  if (cause instanceof natsErrors.ClosedConnectionError) return new NatsError.ConnectionClosed(defined(f))
  if (cause instanceof natsErrors.DrainingConnectionError) return new NatsError.Draining(defined(f))
  if (cause instanceof natsErrors.AuthorizationError || cause instanceof natsErrors.UserAuthenticationExpiredError) {
    return new NatsError.AuthorizationViolation(defined(f))
  }
  if (cause instanceof natsErrors.PermissionViolationError) {
    return new NatsError.PermissionViolation(defined({ ...f, subject: cause.subject, queue: cause.queue }))
  }
  if (cause instanceof natsErrors.InvalidSubjectError) return new NatsError.InvalidSubject(defined(f))
  if (/does not support 'tls'|'tls' is not available/.test(message)) {
    return new NatsError.TlsError(
      defined({ ...f, message: "TLS: the server does not offer TLS (asked for by a tls:// URL or the tls option)" })
    )
  }
  if (cause instanceof natsErrors.InvalidArgumentError) {
    if (message.includes("max_payload")) {
      return new NatsError.MaxPayloadExceeded(defined({ ...f, size: -1, maxPayload: -1 }))
    }
    return new NatsError.InvalidArgument(defined(f))
  }
  const limit = cause instanceof natsErrors.ProtocolError ? limitOf(message) : undefined
  if (limit !== undefined) return new NatsError.LimitExceeded(defined({ ...f, limit }))
  const tls = tlsFailure(cause)
  if (tls !== undefined) return new NatsError.TlsError(defined({ ...f, message: `TLS: ${tls}` }))
  if (cause instanceof natsErrors.ConnectionError) {
    return /refused|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/i.test(message)
      ? new NatsError.ConnectionRefused(defined(f))
      : new NatsError.Unknown(defined(f))
  }
  if (
    cause instanceof Error && "code" in cause &&
    // EPIPE, ECONNRESET: the server closed the connection (nats.js may see that before the server's -ERR)
    (cause.code === "ECONNREFUSED" || cause.code === "ECONNRESET" || cause.code === "EPIPE" ||
      cause.code === "ENOTFOUND")
  ) {
    return new NatsError.ConnectionRefused(defined(f))
  }
  return new NatsError.Unknown(defined(f))
}

/** A `NatsError` for a raw nats.js failure. */
export const fromUnknown = (cause: unknown, ctx: Context): NatsError.NatsError =>
  NatsError.isNatsError(cause) ? cause : natsError(reasonFromUnknown(cause, ctx))
