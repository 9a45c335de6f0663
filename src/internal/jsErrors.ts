/**
 * Maps nats.js JetStream errors into `NatsError` reasons (and falls back to
 * the core mapping).
 *
 * @internal
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { jserrors } from "@nats-io/jetstream/internal"
import { RequestError } from "@nats-io/nats-core"
import * as NatsError from "../schemas/NatsError.ts"
import { defined, natsError, reasonFromUnknown } from "./errors.ts"

export interface JsContext {
  readonly operation: string
  readonly subject?: string | undefined
  readonly stream?: string | undefined
  readonly consumer?: string | undefined
  readonly timeoutMillis?: number | undefined
  /** A JetStream publish: "no responders" means no stream captures the subject. */
  readonly publish?: boolean | undefined
}

/** JetStream API error codes we give their own reason. */
export const ApiCodes = {
  ConsumerNotFound: 10014,
  StreamNotFound: 10059,
  JetStreamNotEnabledForAccount: 10039,
  JetStreamNotEnabled: 10076,
  StreamNameInUse: 10058,
  StreamWrongLastSequence: 10071,
  StreamWrongLastSequenceUnknown: 10164,
  StreamWrongLastMsgId: 10070,
  StreamNotMatch: 10060,
  /** "consumer already exists": a 2.10+ code, reused for the same condition on older servers. */
  ConsumerAlreadyExists: 10148
} as const

const base = (ctx: JsContext, message: string, cause: unknown) => ({
  operation: ctx.operation,
  message,
  cause,
  subject: ctx.subject
})

const isNoResponders = (cause: unknown): boolean => cause instanceof RequestError ? cause.isNoResponders() : false

/** The reason for a raw nats.js JetStream failure. */
export const jsReasonFromUnknown = (cause: unknown, ctx: JsContext): NatsError.NatsErrorReason => {
  if (NatsError.isNatsErrorReason(cause)) return cause
  if (NatsError.isNatsError(cause)) return cause.reason
  if (cause instanceof jserrors.JetStreamNotEnabled) {
    if (isNoResponders(cause.cause)) {
      return ctx.publish === true
        ? new NatsError.NoStreamForSubject(
          base(ctx, `no stream captures the subject ${ctx.subject ?? ""}`.trim(), cause)
        )
        : new NatsError.JetStreamNotEnabled(base(ctx, "JetStream is not enabled on the server (no responders)", cause))
    }
    return new NatsError.JetStreamNotEnabled(base(ctx, cause.message, cause))
  }
  if (cause instanceof JetStreamApiError) {
    const api = cause.apiError()
    const message = api.description
    switch (api.err_code) {
      case ApiCodes.StreamNotFound:
        return new NatsError.StreamNotFound(defined({
          ...base(ctx, ctx.stream === undefined ? message : `stream ${ctx.stream} not found`, cause),
          stream: ctx.stream
        }))
      case ApiCodes.ConsumerNotFound:
        return new NatsError.ConsumerNotFound(defined({
          ...base(ctx, ctx.consumer === undefined ? message : `consumer ${ctx.consumer} not found`, cause),
          stream: ctx.stream,
          consumer: ctx.consumer
        }))
      case ApiCodes.JetStreamNotEnabled:
      case ApiCodes.JetStreamNotEnabledForAccount:
        return new NatsError.JetStreamNotEnabled(base(ctx, message, cause))
      case ApiCodes.StreamWrongLastSequence:
      case ApiCodes.StreamWrongLastSequenceUnknown:
      case ApiCodes.StreamWrongLastMsgId:
      case ApiCodes.StreamNotMatch:
        return new NatsError.WrongLastSequence(
          defined({ ...base(ctx, message, cause), code: api.code, errCode: api.err_code })
        )
      default:
        return new NatsError.JetStreamApi(
          defined({ ...base(ctx, message, cause), code: api.code, errCode: api.err_code })
        )
    }
  }
  return reasonFromUnknown(cause, ctx)
}

/** A `NatsError` for a raw nats.js JetStream failure. */
export const jsFromUnknown = (cause: unknown, ctx: JsContext): NatsError.NatsError =>
  NatsError.isNatsError(cause) ? cause : natsError(jsReasonFromUnknown(cause, ctx))
