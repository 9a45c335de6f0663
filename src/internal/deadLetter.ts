/**
 * The Processor's dead-letter: a message that will not be processed is
 * published (payload and user headers) to a dead-letter subject with headers
 * stating why and where it came from, and terminated only once that publish
 * is acknowledged.
 *
 * @internal
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/nats-core"
import { headers as makeHeaders } from "@nats-io/nats-core"

/**
 * Headers set on a dead-lettered message.
 */
export const DeadLetterHeaders = {
  reason: "Nats-Dlq-Reason",
  error: "Nats-Dlq-Error",
  stream: "Nats-Dlq-Stream",
  consumer: "Nats-Dlq-Consumer",
  sequence: "Nats-Dlq-Sequence",
  subject: "Nats-Dlq-Subject",
  deliveryCount: "Nats-Dlq-Delivery-Count"
} as const

/** Where a message comes from, for logs: `subject (stream S seq N)`. */
export const where = (msg: JsMsg): string => `${msg.subject} (stream ${msg.info.stream} seq ${msg.info.streamSequence})`

/** The headers of the dead letter of `msg`: its own (not JetStream's control headers) and the reason headers. */
export const headersOf = (msg: JsMsg, reason: string, error: string): MsgHdrs => {
  const h = makeHeaders()
  if (msg.headers !== undefined) {
    // JetStream control headers (Nats-Expected-*, Nats-Rollup, Nats-Msg-Id...)
    // would act on the dead-letter stream: they are not copied.
    for (const [key, values] of msg.headers) {
      if (key.toLowerCase().startsWith("nats-")) continue
      for (const value of values) h.append(key, value)
    }
  }
  h.set(DeadLetterHeaders.reason, reason)
  h.set(DeadLetterHeaders.error, error)
  h.set(DeadLetterHeaders.stream, msg.info.stream)
  h.set(DeadLetterHeaders.consumer, msg.info.consumer)
  h.set(DeadLetterHeaders.sequence, String(msg.info.streamSequence))
  h.set(DeadLetterHeaders.subject, msg.subject)
  h.set(DeadLetterHeaders.deliveryCount, String(msg.info.deliveryCount))
  return h
}

/** The msgId of the dead letter of `msg`: a dead-letter publish repeated after a crash is a duplicate. */
export const msgIdOf = (msg: JsMsg): string => `dlq:${msg.info.stream}:${msg.info.consumer}:${msg.info.streamSequence}`

const safeJson = (u: unknown): string => {
  try {
    return JSON.stringify(u) ?? ""
  } catch {
    return String(u)
  }
}

/**
 * A failure on one line of at most 1 KiB (it travels in a header): a tagged
 * error as `Tag: message` (or its fields), an `Error` as `Name: message`.
 */
export const oneLine = (u: unknown): string => {
  let text: string
  if (typeof u === "object" && u !== null && "_tag" in u) {
    const { _tag, message, ...fields } = u as { readonly _tag: unknown; readonly message?: unknown }
    const detail = typeof message === "string" && message.length > 0 ? message : safeJson(fields)
    text = `${String(_tag)}${detail === "{}" ? "" : `: ${detail}`}`
  } else {
    text = u instanceof Error ? `${u.name}: ${u.message}` : String(u)
  }
  return text.replace(/[\r\n]+/g, " ").slice(0, 1024)
}
