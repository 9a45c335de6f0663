/**
 * A JetStream publish as a request on the connection's shared inbox (see
 * `requestMux`): the same wire exchange as nats.js' `js.publish` (the
 * message, with its `Nats-Msg-Id` / `Nats-Expected-*` headers, to the
 * subject; the stream's ack as the reply), without an `Error` allocated per
 * publish, cancellable, and with no header block when there are no headers.
 *
 * @internal
 */
import { JetStreamApiError, JetStreamError } from "@nats-io/jetstream"
import type { MsgHdrs, Payload } from "@nats-io/nats-core"
import { headers as makeHeaders } from "@nats-io/nats-core"
import { Result } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import { jetStreamNotEnabled, noStreamForSubject, streamDidNotAnswer } from "./errors.ts"
import { jsFromUnknown } from "./jsErrors.ts"
import type { RequestMux } from "./requestMux.ts"

export interface Ack {
  readonly stream: string
  readonly seq: number
  readonly duplicate: boolean
  readonly domain?: string | undefined
}

export interface Expectations {
  readonly lastSequence?: number | undefined
  readonly lastSubjectSequence?: number | undefined
  readonly lastMsgId?: string | undefined
  readonly streamName?: string | undefined
}

/** The headers of a publish: the caller's, plus the msgId and expectations; `undefined` when none. */
export const headersOf = (
  hdrs: MsgHdrs | undefined,
  msgId: string | undefined,
  expect: Expectations | undefined
): MsgHdrs | undefined => {
  if (msgId === undefined && expect === undefined) return hdrs
  const h = hdrs ?? makeHeaders()
  if (msgId !== undefined) h.set("Nats-Msg-Id", msgId)
  if (expect !== undefined) {
    if (expect.lastMsgId !== undefined) h.set("Nats-Expected-Last-Msg-Id", expect.lastMsgId)
    if (expect.streamName !== undefined) h.set("Nats-Expected-Stream", expect.streamName)
    if (expect.lastSequence !== undefined) h.set("Nats-Expected-Last-Sequence", String(expect.lastSequence))
    if (expect.lastSubjectSequence !== undefined) {
      h.set("Nats-Expected-Last-Subject-Sequence", String(expect.lastSubjectSequence))
    }
  }
  return h
}

const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** Where publishes go: the connection's mux, and the JetStream API (to ask which stream captures a subject). */
export interface Target {
  readonly mux: RequestMux
  readonly operation: string
  /** `$JS.API`, or the domain's / the configured prefix. */
  readonly apiPrefix: string
  /** Whether the server the connection is on has JetStream (its `INFO` says so). */
  readonly jetstream: () => boolean
}

/** The `description` of a JetStream API error answer. */
const describe = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "description" in error && typeof error.description === "string"
    ? error.description
    : undefined

/**
 * What a `STREAM.NAMES` answer says of a subject: no stream captures it
 * (`None`), or it cannot say. An error answer (`{"error": ..., "streams":
 * null}`: no meta leader; JetStream stopping, when for a moment the server
 * answers that the account has no JetStream) is no answer. That includes
 * an account without JetStream on a server with it: told apart from a
 * stopping server by nothing in the answer, it is retryable too, and its
 * error says what the server said.
 */
const streamsOf = (
  data: Uint8Array
):
  | { readonly _tag: "None" }
  | {
    readonly _tag: "InDoubt"
    readonly stream?: string | undefined
    readonly error?: unknown
    readonly why?: string | undefined
  } =>
{
  let answer: { readonly error?: unknown; readonly streams?: unknown } | undefined
  try {
    answer = JSON.parse(decoder.decode(data))
  } catch {
    answer = undefined
  }
  if (answer === undefined || answer === null || typeof answer !== "object") return { _tag: "InDoubt" }
  if (answer.error !== undefined) return { _tag: "InDoubt", error: answer.error, why: describe(answer.error) }
  const streams = answer.streams
  if (streams === null || (Array.isArray(streams) && streams.length === 0)) return { _tag: "None" }
  return { _tag: "InDoubt", stream: Array.isArray(streams) && typeof streams[0] === "string" ? streams[0] : undefined }
}

/**
 * "No responders" to a publish: nothing listens on the subject. Either no
 * stream captures it (final), or its stream has no leader right now (an
 * election: every replica stops listening until a new leader is chosen;
 * retryable). The JetStream API says which: it lists the streams that
 * capture the subject. When it cannot say (no meta leader either, or its
 * JetStream is restarting: no answer, or an error answer), the publish is
 * in doubt, so retryable; a server without JetStream is
 * `JetStreamNotEnabled`.
 */
const noResponders = (
  target: Target,
  subject: string,
  timeoutMillis: number,
  done: (result: Result.Result<Ack, NatsError.NatsError>) => void
): void => {
  const { operation } = target
  const lookup = encoder.encode(JSON.stringify({ subject }))
  target.mux.send(operation, `${target.apiPrefix}.STREAM.NAMES`, lookup, undefined, timeoutMillis, (outcome) => {
    switch (outcome._tag) {
      case "Reply": {
        const answer = streamsOf(outcome.msg.data)
        if (answer._tag === "None") return done(Result.fail(noStreamForSubject(operation, subject)))
        return done(
          Result.fail(streamDidNotAnswer(operation, subject, answer.stream, answer.error, answer.why))
        )
      }
      case "NoResponders":
        // the JetStream API itself does not answer: a server without JetStream (final), or one whose
        // JetStream is stopping or starting (a restart: in doubt, retryable)
        return done(Result.fail(
          target.jetstream()
            ? streamDidNotAnswer(operation, subject, undefined)
            : jetStreamNotEnabled(operation, subject)
        ))
      case "Failed":
        return done(Result.fail(streamDidNotAnswer(operation, subject, undefined, outcome.error)))
    }
  })
}

/**
 * Sends one publish; `done` gets the ack, or the failure as a `NatsError`
 * (the stream's API errors mapped as for every JetStream call; "no
 * responders": see `noResponders`). Returns the cancel function (a lookup
 * after "no responders" is not cancelled: it ends by its own timeout).
 */
export const send = (
  target: Target,
  subject: string,
  payload: Payload | undefined,
  headers: MsgHdrs | undefined,
  timeoutMillis: number,
  done: (result: Result.Result<Ack, NatsError.NatsError>) => void
): () => void => {
  const operation = target.operation
  const failed = (cause: unknown) => done(Result.fail(jsFromUnknown(cause, { operation, subject, publish: true })))
  return target.mux.send(operation, subject, payload, headers, timeoutMillis, (outcome) => {
    switch (outcome._tag) {
      case "Reply": {
        let reply: {
          readonly stream?: string
          readonly seq?: number
          readonly duplicate?: boolean
          readonly domain?: string
          readonly error?: ConstructorParameters<typeof JetStreamApiError>[0]
        }
        try {
          reply = JSON.parse(decoder.decode(outcome.msg.data))
        } catch (cause) {
          return failed(new JetStreamError("invalid ack response", { cause }))
        }
        if (reply.error !== undefined) return failed(new JetStreamApiError(reply.error))
        if (typeof reply.stream !== "string" || reply.stream === "" || typeof reply.seq !== "number") {
          return failed(new JetStreamError("invalid ack response"))
        }
        return done(Result.succeed(
          reply.domain === undefined
            ? { stream: reply.stream, seq: reply.seq, duplicate: reply.duplicate === true }
            : { stream: reply.stream, seq: reply.seq, duplicate: reply.duplicate === true, domain: reply.domain }
        ))
      }
      case "NoResponders":
        return noResponders(target, subject, timeoutMillis, done)
      case "Failed":
        return done(Result.fail(outcome.error))
    }
  })
}
