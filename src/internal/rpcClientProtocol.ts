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
import type { Scope } from "effect"
import { Effect, Schedule, Stream } from "effect"
import * as RpcClient from "effect/rpc/RpcClient"
import { RpcClientDefect, RpcClientError } from "effect/rpc/RpcClientError"
import type * as RpcMessage from "effect/rpc/RpcMessage"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import type { NatsClientShape } from "../services/NatsClient.ts"
import { fromUnknown, noResponders, timeout } from "./errors.ts"
import * as Wire from "./rpcWire.ts"
import { acquire } from "./subscription.ts"

export interface ClientOptions {
  readonly subject: string
  readonly heartbeatMillis: number
  readonly bufferSize: number
}

const rpcError = (message: string, cause: unknown) =>
  new RpcClientError({ reason: new RpcClientDefect({ message, cause }) })

interface Pending {
  readonly clientId: number
  readonly key: string
  readonly reply: string
  readonly sentAt: number
  /** The instance's direct subject, once known. */
  instance: string | undefined
  /** Since when its instance's heartbeats no longer list it (its Exit lost), if they do not. */
  unlistedSince: number | undefined
  /** How it ended, when it ended before its send was waiting. */
  outcome: RpcClientError | "done" | undefined
  done: ((error: RpcClientError | undefined) => void) | undefined
}

/** The requests in flight: by id and by reply subject, with the instances' last heartbeats. */
class Requests {
  private readonly byId = new Map<string, Pending>()
  private readonly byReply = new Map<string, Pending>()
  private readonly lastHeard = new Map<string, number>()
  private seq = 0
  private readonly inbox: string

  constructor(inbox: string) {
    this.inbox = inbox
  }

  open(clientId: number, id: string | number): Pending {
    const p: Pending = {
      clientId,
      key: String(id),
      reply: `${this.inbox}.${this.seq++}`,
      sentAt: Date.now(),
      instance: undefined,
      unlistedSince: undefined,
      outcome: undefined,
      done: undefined
    }
    this.byId.set(p.key, p)
    this.byReply.set(p.reply, p)
    return p
  }

  get(id: string | number): Pending | undefined {
    return this.byId.get(String(id))
  }

  ofReply(reply: string): Pending | undefined {
    return this.byReply.get(reply)
  }

  all(): ReadonlyArray<Pending> {
    return Array.from(this.byId.values())
  }

  /** Ends a request: its waiting send succeeds, or fails with `error`. */
  settle(p: Pending, error: RpcClientError | undefined): void {
    this.byId.delete(p.key)
    this.byReply.delete(p.reply)
    const done = p.done
    p.done = undefined
    if (done !== undefined) done(error)
    else p.outcome = error ?? "done"
  }

  /** The send of a request: waits until it ends. */
  wait(p: Pending): Effect.Effect<void, RpcClientError> {
    return Effect.callback<void, RpcClientError>((resume) => {
      if (p.outcome !== undefined) return resume(p.outcome === "done" ? Effect.void : Effect.fail(p.outcome))
      p.done = (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
      return Effect.sync(() => {
        p.done = undefined
      })
    })
  }

  /** Heard from `instance` now; it handles `p` when given. */
  heard(instance: string, p?: Pending): void {
    this.lastHeard.set(instance, Date.now())
    if (p !== undefined) p.instance = instance
  }

  /**
   * A heartbeat: the instance is alive and has these requests; a request of
   * that instance it does not list has lost its Exit (the instance ends a
   * request only by sending it), unless the Exit is still on its way.
   */
  claimed(heartbeat: Wire.Heartbeat): void {
    const now = Date.now()
    this.lastHeard.set(heartbeat.instance, now)
    const listed = new Set(heartbeat.requests)
    for (const key of listed) {
      const p = this.byId.get(key)
      if (p !== undefined) p.instance ??= heartbeat.instance
    }
    for (const p of this.byId.values()) {
      if (p.instance !== heartbeat.instance) continue
      if (listed.has(p.key)) p.unlistedSince = undefined
      else p.unlistedSince ??= now
    }
  }

  /** The requests given up on after `limit` ms: their instance silent, their Exit lost, or never claimed. */
  lost(limit: number): ReadonlyArray<{ readonly p: Pending; readonly why: "silent" | "unlisted" | "unclaimed" }> {
    const now = Date.now()
    const lost: Array<{ p: Pending; why: "silent" | "unlisted" | "unclaimed" }> = []
    for (const p of this.byId.values()) {
      if (p.instance === undefined) {
        if (now - p.sentAt > limit) lost.push({ p, why: "unclaimed" })
      } else if (now - (this.lastHeard.get(p.instance) ?? p.sentAt) > limit) {
        lost.push({ p, why: "silent" })
      } else if (p.unlistedSince !== undefined && now - p.unlistedSince > limit) {
        lost.push({ p, why: "unlisted" })
      }
    }
    return lost
  }
}

interface Inbox {
  readonly subject: string
  readonly requests: Requests
  readonly serialization: RpcSerialization.RpcSerialization["Service"]
  readonly writeResponse: (clientId: number, response: RpcMessage.FromServerEncoded) => Effect.Effect<void>
  readonly broadcast: (response: RpcMessage.FromServerEncoded) => Effect.Effect<void>
  /** Tells the instance of a request the client gave up on (every instance, when it is not known). */
  readonly interrupt: (p: Pending) => void
}

/** What the inbox receives: messages outside any request, and each request's responses. */
const inboxHandler = (inbox: string, self: Inbox) => {
  const { requests } = self
  const control = Wire.clientSubject(inbox)
  let decoder = self.serialization.makeUnsafe()

  const route = (message: RpcMessage.FromServerEncoded): Effect.Effect<void> => {
    if (!("requestId" in message)) {
      // a defect ends every request of the client
      if (message._tag === "Defect") { for (const p of requests.all()) requests.settle(p, undefined) }
      return message._tag === "Pong" ? Effect.void : self.broadcast(message)
    }
    const p = requests.get(message.requestId)
    if (p === undefined) return Effect.void
    if (message._tag !== "Exit") return self.writeResponse(p.clientId, message)
    return Effect.ensuring(self.writeResponse(p.clientId, message), Effect.sync(() => requests.settle(p, undefined)))
  }

  const decoded = (msg: Msg): Effect.Effect<void> => {
    let messages: ReadonlyArray<unknown>
    try {
      messages = decoder.decode(msg.data)
    } catch (cause) {
      decoder = self.serialization.makeUnsafe()
      return Effect.logWarning(`nats rpc: an undecodable message on ${msg.subject} was dropped`, cause)
    }
    return messages.length === 1
      ? route(messages[0] as RpcMessage.FromServerEncoded)
      : Effect.forEach(messages, (m) => route(m as RpcMessage.FromServerEncoded), { discard: true })
  }

  return (msg: Msg): Effect.Effect<void> => {
    if (msg.subject === control) return decoded(msg)
    const p = requests.ofReply(msg.subject)
    if (p === undefined) return Effect.void
    if (Wire.isNoResponders(msg)) {
      const error = rpcError(`nobody serves ${self.subject}`, noResponders("RpcClient", self.subject))
      return Effect.sync(() => requests.settle(p, error))
    }
    const instance = msg.headers?.get(Wire.INSTANCE_HEADER)
    if (instance) requests.heard(instance, p)
    return decoded(msg)
  }
}

/** Fails the requests that are lost, every heartbeat interval, and tells their instance. */
const watchdog = (requests: Requests, options: ClientOptions, interrupt: (p: Pending) => void) => {
  const limit = 3 * options.heartbeatMillis
  const why: Record<"silent" | "unlisted" | "unclaimed", (p: Pending) => readonly [string, string]> = {
    silent: (
      p
    ) => ["the instance handling the request stopped answering", `no heartbeat from ${p.instance} for ${limit} ms`],
    unlisted: (p) => [
      "the instance handling the request no longer has it (its response was lost)",
      `${p.instance} has not listed the request for ${limit} ms`
    ],
    unclaimed:
      () => ["no instance took the request", `no instance of ${options.subject} claimed the request within ${limit} ms`]
  }
  return Effect.sync(() => {
    for (const { p, why: reason } of requests.lost(limit)) {
      const [message, detail] = why[reason](p)
      interrupt(p)
      requests.settle(p, rpcError(message, timeout("RpcClient", detail, { subject: p.instance ?? options.subject })))
    }
  }).pipe(Effect.repeat(Schedule.spaced(options.heartbeatMillis)))
}

/** Answers the instances' heartbeats at once, on nats.js' callback (never behind a slow reader), until the scope closes. */
const answerHeartbeats = (nats: NatsClientShape, inbox: string, requests: Requests) =>
  Effect.acquireRelease(
    Effect.try({
      try: () =>
        nats.core.connection.subscribe(Wire.heartbeatSubject(inbox), {
          callback: (err, msg) => {
            if (err !== null) return
            const heartbeat = Wire.decodeHeartbeat(msg)
            if (heartbeat !== undefined) requests.claimed(heartbeat)
            msg.respond()
          }
        }),
      catch: (cause) => fromUnknown(cause, { operation: "RpcClient", subject: Wire.heartbeatSubject(inbox) })
    }),
    (sub) => Effect.sync(() => sub.unsubscribe())
  )

export const make = (nats: NatsClientShape, options: ClientOptions) =>
  RpcClient.Protocol.make(Effect.fnUntraced(function*(writeResponse, clientIds) {
    const serialization = yield* RpcSerialization.RpcSerialization
    const scope: Scope.Scope = yield* Effect.scope
    const nc = nats.core.connection
    const inbox = createInbox(nats.core.inboxPrefix)
    const all = Wire.allSubject(options.subject)
    const control = Wire.clientSubject(inbox)
    const encoder = serialization.makeUnsafe()
    const requests = new Requests(inbox)
    const broadcast = (response: RpcMessage.FromServerEncoded) =>
      Effect.forEach(Array.from(clientIds), (clientId) => writeResponse(clientId, response), { discard: true })

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
    const sent = (failed: RpcClientError | undefined) => failed === undefined ? Effect.void : Effect.fail(failed)

    // the inbox; if it fails (its buffer overflowed, the connection closed for good), every request
    // fails with it, and so does every later one
    let broken: RpcClientError | undefined
    const sub = yield* acquire(nats.core, `${inbox}.>`, {
      bufferSize: options.bufferSize,
      maxBytes: 64 * 1024 * 1024,
      overflow: "fail"
    })
    yield* sub.confirmed
    const interrupt = (p: Pending) => void publish(p.instance ?? all, { _tag: "Interrupt", requestId: p.key }, control)
    yield* answerHeartbeats(nats, inbox, requests)
    const onMessage = inboxHandler(inbox, {
      subject: options.subject,
      requests,
      serialization,
      writeResponse,
      broadcast,
      interrupt
    })
    yield* Stream.runForEach(sub.messages, onMessage).pipe(
      Effect.catch((error) => {
        const failure = rpcError(`the inbox failed: ${error.message}`, error)
        broken = failure
        for (const p of requests.all()) requests.settle(p, failure)
        return broadcast({ _tag: "ClientProtocolError", error: failure })
      }),
      Effect.forkIn(scope)
    )
    yield* Effect.forkIn(watchdog(requests, options, interrupt), scope)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        broken = rpcError("the client was closed", undefined)
        for (const p of requests.all()) requests.settle(p, broken)
      })
    )

    const send = (clientId: number, request: RpcMessage.FromClientEncoded): Effect.Effect<void, RpcClientError> => {
      if (broken !== undefined) return Effect.fail(broken)
      switch (request._tag) {
        case "Request": {
          const p = requests.open(clientId, request.id)
          const failed = publish(options.subject, request, p.reply)
          if (failed !== undefined) requests.settle(p, failed)
          // as long as the request: it fails when the request is lost
          return requests.wait(p)
        }
        case "Interrupt":
        case "Ack": {
          const p = requests.get(request.requestId)
          if (request._tag === "Interrupt" && p !== undefined) requests.settle(p, undefined)
          return sent(publish(p?.instance ?? all, request, control))
        }
        default:
          return sent(publish(all, request, control))
      }
    }

    return { send, supportsAck: true, supportsTransferables: false, codecFor: serialization.codecFor }
  }))
