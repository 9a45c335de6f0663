/**
 * The client side of Effect RPC over NATS: an `RpcClient.Protocol` with one
 * inbox. A request goes to the group's subject (the queue group picks an
 * instance) with its own reply subject; the instance that took it is learnt
 * from its first chunk or its heartbeat, and the request's acks and
 * interrupts go to that instance (to every instance before that).
 *
 * A request's `send` lasts as long as the request (as the HTTP protocol's
 * does), so a request can fail on its own with an `RpcClientError`:
 * - at once when nobody serves the subject (the server's 503 on its reply
 *   subject);
 * - when its instance's heartbeats stop for three intervals (the instance
 *   died, or lost its connection);
 * - when no instance claimed it within three intervals (dropped by an
 *   overloaded instance).
 *
 * @internal
 */
import type { Msg } from "@nats-io/nats-core"
import { createInbox } from "@nats-io/nats-core"
import { Effect, Schedule, Scope, Stream } from "effect"
import * as RpcClient from "effect/rpc/RpcClient"
import { RpcClientDefect, RpcClientError } from "effect/rpc/RpcClientError"
import type * as RpcMessage from "effect/rpc/RpcMessage"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import type * as NatsError from "../schemas/NatsError.ts"
import type { NatsClientShape } from "../services/NatsClient.ts"
import { noResponders, timeout } from "./errors.ts"
import * as Wire from "./rpcWire.ts"
import { acquire } from "./subscription.ts"

export interface ClientOptions {
  readonly subject: string
  readonly heartbeatMillis: number
  readonly bufferSize: number
}

interface Pending {
  readonly clientId: number
  readonly key: string
  readonly reply: string
  readonly sentAt: number
  /** The instance's direct subject, once known. */
  instance: string | undefined
  /** How it ended, when it ended before its send was waiting. */
  outcome: RpcClientError | "done" | undefined
  done: ((error: RpcClientError | undefined) => void) | undefined
}

const rpcError = (message: string, cause: NatsError.NatsError | unknown) =>
  new RpcClientError({ reason: new RpcClientDefect({ message, cause }) })

export const make = (nats: NatsClientShape, options: ClientOptions) =>
  RpcClient.Protocol.make(Effect.fnUntraced(function*(writeResponse, clientIds) {
    const serialization = yield* RpcSerialization.RpcSerialization
    const scope = yield* Effect.scope
    const nc = nats.core.connection
    const inbox = createInbox(nats.core.inboxPrefix)
    const all = Wire.allSubject(options.subject)
    const control = Wire.clientSubject(inbox)
    const heartbeats = Wire.heartbeatSubject(inbox)
    const encoder = serialization.makeUnsafe()
    let decoder = serialization.makeUnsafe()
    const pending = new Map<string, Pending>()
    const byReply = new Map<string, Pending>()
    const lastHeard = new Map<string, number>()
    let seq = 0

    const settle = (p: Pending, error: RpcClientError | undefined) => {
      pending.delete(p.key)
      byReply.delete(p.reply)
      const done = p.done
      p.done = undefined
      if (done !== undefined) done(error)
      else p.outcome = error ?? "done"
    }

    /** Sends `message`; a failure to send (an oversize request, a closed connection) is the error. */
    const publish = (subject: string, message: RpcMessage.FromClientEncoded, reply: string) => {
      try {
        const encoded = encoder.encode(message)
        if (encoded !== undefined) nc.publish(subject, encoded, { reply })
        return undefined
      } catch (cause) {
        return rpcError(`could not send the request to ${subject}: ${String(cause)}`, cause)
      }
    }

    const broadcast = (response: RpcMessage.FromServerEncoded) =>
      Effect.forEach(Array.from(clientIds), (clientId) => writeResponse(clientId, response), { discard: true })

    const route = (message: RpcMessage.FromServerEncoded): Effect.Effect<void> => {
      if (!("requestId" in message)) {
        if (message._tag === "Defect") { for (const p of Array.from(pending.values())) settle(p, undefined) }
        return message._tag === "Pong" ? Effect.void : broadcast(message)
      }
      const p = pending.get(String(message.requestId))
      if (p === undefined) return Effect.void
      if (message._tag !== "Exit") return writeResponse(p.clientId, message)
      return Effect.ensuring(writeResponse(p.clientId, message), Effect.sync(() => settle(p, undefined)))
    }

    const decodeAll = (msg: Msg): Effect.Effect<void> => {
      let messages: ReadonlyArray<unknown>
      try {
        messages = decoder.decode(msg.data)
      } catch (cause) {
        decoder = serialization.makeUnsafe()
        return Effect.logWarning(`nats rpc: an undecodable message on ${msg.subject} was dropped`, cause)
      }
      return Effect.forEach(messages, (m) => route(m as RpcMessage.FromServerEncoded), { discard: true })
    }

    const onMessage = (msg: Msg): Effect.Effect<void> => {
      const now = Date.now()
      if (msg.subject === heartbeats) {
        const heartbeat = Wire.decodeHeartbeat(msg)
        if (heartbeat !== undefined) {
          lastHeard.set(heartbeat.instance, now)
          for (const key of heartbeat.requests) {
            const p = pending.get(key)
            if (p !== undefined) p.instance ??= heartbeat.instance
          }
        }
        return Effect.sync(() => msg.respond())
      }
      if (msg.subject === control) return decodeAll(msg)
      const p = byReply.get(msg.subject)
      if (p === undefined) return Effect.void
      if (Wire.isNoResponders(msg)) {
        return Effect.sync(() =>
          settle(p, rpcError(`nobody serves ${options.subject}`, noResponders("RpcClient", options.subject)))
        )
      }
      const instance = msg.headers?.get(Wire.INSTANCE_HEADER)
      if (instance) {
        p.instance = instance
        lastHeard.set(instance, now)
      }
      return decodeAll(msg)
    }

    // the inbox; if it fails (its buffer overflowed, the connection closed for good), every request
    // fails with it, and so does every later one
    let broken: RpcClientError | undefined
    const sub = yield* acquire(nats.core, `${inbox}.>`, {
      bufferSize: options.bufferSize,
      maxBytes: 64 * 1024 * 1024,
      overflow: "fail"
    })
    yield* sub.confirmed
    yield* Stream.runForEach(sub.messages, onMessage).pipe(
      Effect.catch((error) => {
        const failure = rpcError(`the inbox failed: ${error.message}`, error)
        broken = failure
        for (const p of Array.from(pending.values())) settle(p, failure)
        return broadcast({ _tag: "ClientProtocolError", error: failure })
      }),
      Effect.forkIn(scope)
    )

    // requests whose instance went quiet, or that no instance claimed
    const limit = 3 * options.heartbeatMillis
    yield* Effect.sync(() => {
      const now = Date.now()
      for (const p of Array.from(pending.values())) {
        if (p.instance !== undefined) {
          if (now - (lastHeard.get(p.instance) ?? p.sentAt) > limit) {
            settle(
              p,
              rpcError(
                `the instance handling the request stopped answering`,
                timeout("RpcClient", `no heartbeat from ${p.instance} for ${limit} ms`, { subject: p.instance })
              )
            )
          }
        } else if (now - p.sentAt > limit) {
          publish(all, { _tag: "Interrupt", requestId: p.key }, control)
          settle(
            p,
            rpcError(
              `no instance took the request`,
              timeout("RpcClient", `no instance of ${options.subject} claimed the request within ${limit} ms`, {
                subject: options.subject
              })
            )
          )
        }
      }
    }).pipe(Effect.repeat(Schedule.spaced(options.heartbeatMillis)), Effect.forkIn(scope))

    const send = (clientId: number, request: RpcMessage.FromClientEncoded): Effect.Effect<void, RpcClientError> => {
      if (broken !== undefined) return Effect.fail(broken)
      switch (request._tag) {
        case "Request": {
          const key = String(request.id)
          const p: Pending = {
            clientId,
            key,
            reply: `${inbox}.${seq++}`,
            sentAt: Date.now(),
            instance: undefined,
            outcome: undefined,
            done: undefined
          }
          pending.set(key, p)
          byReply.set(p.reply, p)
          const failed = publish(options.subject, request, p.reply)
          if (failed !== undefined) {
            settle(p, failed)
            return Effect.fail(failed)
          }
          // as long as the request: it fails when the request is lost
          return Effect.callback<void, RpcClientError>((resume) => {
            if (p.outcome !== undefined) return resume(p.outcome === "done" ? Effect.void : Effect.fail(p.outcome))
            p.done = (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
            return Effect.sync(() => {
              p.done = undefined
            })
          })
        }
        case "Interrupt":
        case "Ack": {
          const p = pending.get(String(request.requestId))
          if (request._tag === "Interrupt" && p !== undefined) settle(p, undefined)
          const failed = publish(p?.instance ?? all, request, control)
          return failed === undefined ? Effect.void : Effect.fail(failed)
        }
        default: {
          const failed = publish(all, request, control)
          return failed === undefined ? Effect.void : Effect.fail(failed)
        }
      }
    }

    yield* Scope.addFinalizer(
      scope,
      Effect.sync(() => {
        for (const p of Array.from(pending.values())) settle(p, rpcError("the client was closed", undefined))
      })
    )

    return {
      send,
      supportsAck: true,
      supportsTransferables: false,
      codecFor: serialization.codecFor
    }
  }))
