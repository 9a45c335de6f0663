/**
 * The pipeline of a JetStream `publishAll`: a producer fiber reads the input
 * and sends while the window of outstanding acks has room; the returned pull
 * emits the settled acks in input order and fails at the first message (in
 * input order) that failed.
 *
 * @internal
 */
import type { MsgHdrs } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Cause, Effect, Exit } from "effect"
import type * as Arr from "effect/Array"
import * as Pull from "effect/Pull"
import * as NatsError from "../schemas/NatsError.ts"
import type { OutgoingMessage } from "../services/JetStream.ts"
import type { NatsCore } from "./core.ts"
import { jsFromUnknown } from "./jsErrors.ts"
import type { Ack } from "./jsPublish.ts"
import * as JsPublish from "./jsPublish.ts"
import { PublishWindow } from "./publishWindow.ts"
import { headers as checkedHeaders } from "./validation.ts"

const operation = "JetStream.publishAll"

/** The message that failed, and why. */
export interface Failed {
  readonly index: number
  readonly subject: string
  readonly msgId: string | undefined
  readonly error: NatsError.NatsError
}

export interface PipelineOptions<F> {
  readonly core: NatsCore
  /** Acks outstanding at most. */
  readonly capacity: number
  readonly timeoutMillis: number
  /** The failure of the stream for the message that failed. */
  readonly failure: (failed: Failed) => F
}

/** Sends one message into the window (a message that fails before it is sent takes its slot, failed). */
const sender = (core: NatsCore, window: PublishWindow<Ack>, timeoutMillis: number) => {
  const { requests, validation } = core
  let index = 0
  return (msg: OutgoingMessage): void => {
    const i = index++
    const { msgId, payload, subject } = msg
    let hdrs: MsgHdrs | undefined
    try {
      const checked = checkedHeaders(msg.headers, subject, operation)
      if (NatsError.isNatsError(checked)) return window.reject(i, subject, msgId, checked)
      hdrs = checked
      const invalid = validation.message(subject, payload, hdrs, operation)
      if (invalid !== undefined) return window.reject(i, subject, msgId, invalid)
      JsPublish.send(
        requests,
        operation,
        subject,
        payload,
        JsPublish.headersOf(hdrs, msgId, msg.expect),
        timeoutMillis,
        window.open(i, subject, msgId)
      )
    } catch (cause) {
      window.reject(i, subject, msgId, cause)
    }
  }
}

/** Starts the producer in `scope`; returns the pull of settled acks. */
export const make = <E2, F>(
  upstream: Pull.Pull<Arr.NonEmptyReadonlyArray<OutgoingMessage>, E2, void>,
  scope: Scope.Scope,
  options: PipelineOptions<F>
): Effect.Effect<Pull.Pull<Arr.NonEmptyReadonlyArray<Ack>, F | E2, void>> =>
  Effect.gen(function*() {
    const window = new PublishWindow<Ack>(options.capacity)
    const send = sender(options.core, window, options.timeoutMillis)
    let upstreamFailure: Cause.Cause<E2> | undefined

    const produce = Effect.gen(function*() {
      while (true) {
        const exit = yield* Effect.exit(upstream)
        if (Exit.isFailure(exit)) {
          if (!Pull.isDoneCause(exit.cause)) upstreamFailure = exit.cause as Cause.Cause<E2>
          return window.end()
        }
        for (const msg of exit.value) {
          if (window.failed) return window.end()
          if (window.isFull) yield* window.awaitRoom
          if (window.failed) return window.end()
          send(msg)
        }
      }
    })
    yield* Effect.forkIn(produce, scope)

    const failure = (slot: { index: number; subject: string; msgId: string | undefined; error: unknown }) =>
      options.failure({
        index: slot.index,
        subject: slot.subject,
        msgId: slot.msgId,
        error: jsFromUnknown(slot.error, {
          operation,
          subject: slot.subject,
          publish: true,
          timeoutMillis: options.timeoutMillis
        })
      })

    const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<Ack>, F | E2, void> = Effect.suspend(() => {
      const head = window.peek()
      if (head === undefined) {
        if (!window.ended) return Effect.flatMap(window.awaitHead, () => pull)
        return upstreamFailure === undefined ? Cause.done() : Effect.failCause(upstreamFailure)
      }
      if (head.state === 0) return Effect.flatMap(window.awaitHead, () => pull)
      const out: Array<Ack> = []
      let slot = head
      while (slot.state === 1) {
        out.push(slot.value as Ack)
        window.shift()
        const next = window.peek()
        if (next === undefined) break
        slot = next
      }
      window.wakeProducer()
      if (out.length > 0) return Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<Ack>)
      // the head failed (it stays at the head: pulling again fails again)
      return Effect.fail(failure(slot))
    })
    return pull
  })
