/**
 * The server side of Effect RPC over NATS: an `RpcServer.Protocol` whose
 * clients are NATS inboxes. New requests arrive on the group's subject in a
 * queue group (one instance each); their follow-ups on this instance's own
 * subject, or on the subject of every instance (an interrupt sent before the
 * client knew who had its request). Responses go to each request's reply
 * subject; the first chunk of a stream names this instance.
 *
 * Liveness both ways: every `heartbeat`, each client with requests here is
 * sent a heartbeat request listing them. The client answers; a client that
 * is gone (no responders) or misses three is disconnected, which interrupts
 * its handlers. The client, in turn, fails requests whose instance stopped
 * beating.
 *
 * @internal
 */
import type { Msg, MsgHdrs } from "@nats-io/nats-core"
import { headers as natsHeaders, nuid } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Effect, Fiber, Queue, Schedule, Stream } from "effect"
import type * as RpcMessage from "effect/rpc/RpcMessage"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import type { NatsClientShape } from "../services/NatsClient.ts"
import * as Wire from "./rpcWire.ts"
import { acquire } from "./subscription.ts"

export interface ServerOptions {
  readonly subject: string
  readonly queue: string
  readonly heartbeatMillis: number
  readonly bufferSize: number
}

interface Client {
  readonly id: number
  readonly inbox: string
  readonly parser: RpcSerialization.Parser
  /** Requests here, by id: their reply subjects. */
  readonly requests: Map<string, string>
  /** Streams whose first chunk (naming this instance) was sent. */
  readonly announced: Set<string>
  misses: number
  /** Since when it has had no request here (ms), when it has none. */
  idleSince: number | undefined
}

/** A client without requests here for this many heartbeat intervals is forgotten (and the server told). */
const IDLE_BEATS = 30

/** The clients with something here, by id and by inbox. */
class Clients {
  private readonly byId = new Map<number, Client>()
  private readonly byInbox = new Map<string, Client>()
  private nextId = 0
  private readonly serialization: RpcSerialization.RpcSerialization["Service"]

  constructor(serialization: RpcSerialization.RpcSerialization["Service"]) {
    this.serialization = serialization
  }

  of(inbox: string): Client {
    let client = this.byInbox.get(inbox)
    if (client === undefined) {
      client = {
        id: this.nextId++,
        inbox,
        parser: this.serialization.makeUnsafe(),
        requests: new Map(),
        announced: new Set(),
        misses: 0,
        idleSince: Date.now()
      }
      this.byInbox.set(inbox, client)
      this.byId.set(client.id, client)
    }
    return client
  }

  get(id: number): Client | undefined {
    return this.byId.get(id)
  }

  /** The client of `inbox`, if it has talked to this instance. */
  find(inbox: string): Client | undefined {
    return this.byInbox.get(inbox)
  }

  forget(client: Client): void {
    this.byId.delete(client.id)
    this.byInbox.delete(client.inbox)
    this.settled()
  }

  /** A request of `client` ended (its Exit was sent). */
  end(client: Client, key: string): void {
    client.requests.delete(key)
    client.announced.delete(key)
    if (client.requests.size === 0) client.idleSince = Date.now()
    this.settled()
  }

  /** Every request of `client` ended (a defect ends them all). */
  endAll(client: Client): void {
    client.requests.clear()
    client.announced.clear()
    client.idleSince = Date.now()
    this.settled()
  }

  /** Waiting for no request to be left (a drain). */
  private readonly idleWaiters = new Set<() => void>()

  private settled(): void {
    if (this.idleWaiters.size === 0 || this.pending() > 0) return
    for (const resume of this.idleWaiters) resume()
    this.idleWaiters.clear()
  }

  /** Done when no request is left here. */
  readonly idle: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.pending() === 0) return resume(Effect.void)
    const waiter = () => resume(Effect.void)
    this.idleWaiters.add(waiter)
    return Effect.sync(() => void this.idleWaiters.delete(waiter))
  })

  /** A parser for a message from a client not known yet. */
  parserFor(): RpcSerialization.Parser {
    return this.serialization.makeUnsafe()
  }

  ids(): ReadonlySet<number> {
    return new Set(this.byId.keys())
  }

  all(): ReadonlyArray<Client> {
    return Array.from(this.byId.values())
  }

  /** Requests here, over every client. */
  pending(): number {
    let n = 0
    for (const client of this.byId.values()) n += client.requests.size
    return n
  }
}

/** Sends what the server writes: a request's responses to its reply subject, the rest to the client's. */
const sender = (nats: NatsClientShape, clients: Clients, instanceHeaders: MsgHdrs) => {
  const nc = nats.core.connection
  /** Publishes `response`; whether it was sent (an oversize one is not: the caller decides). */
  const publish = (
    subject: string,
    response: unknown,
    parser: RpcSerialization.Parser,
    withInstance: boolean
  ): unknown | undefined => {
    let encoded: string | Uint8Array | undefined
    try {
      encoded = parser.encode(response)
    } catch (cause) {
      encoded = parser.encode({ _tag: "Defect", defect: `could not encode the response: ${String(cause)}` })
    }
    if (encoded === undefined) return undefined
    try {
      nc.publish(subject, encoded, withInstance ? { headers: instanceHeaders } : undefined)
      return undefined
    } catch (cause) {
      return cause
    }
  }
  const toClient = (client: Client, response: unknown): Effect.Effect<void> => {
    const failed = publish(Wire.clientSubject(client.inbox), response, client.parser, false)
    return failed === undefined ? Effect.void : Effect.logWarning(`nats rpc: could not send to ${client.inbox}`, failed)
  }
  const send = (clientId: number, response: RpcMessage.FromServerEncoded): Effect.Effect<void> => {
    const client = clients.get(clientId)
    if (client === undefined) return Effect.void
    if (!("requestId" in response)) {
      // a defect ends every request of the client (its client gives up on them all)
      if (response._tag === "Defect") clients.endAll(client)
      return toClient(client, response)
    }
    const key = String(response.requestId)
    const reply = client.requests.get(key)
    if (reply === undefined) return Effect.void
    const first = response._tag !== "Exit" && !client.announced.has(key)
    const failed = publish(reply, response, client.parser, first)
    // not sent (too large for the server's max_payload, say): the server fails the request with a defect
    if (failed !== undefined) return Effect.die(failed)
    if (response._tag === "Exit") {
      clients.end(client, key)
    } else if (first) {
      client.announced.add(key)
    }
    return Effect.void
  }
  return { toClient, send }
}

/** Decodes what clients send and hands it to the server. */
const receiver = (
  clients: Clients,
  toClient: (client: Client, response: unknown) => Effect.Effect<void>,
  writeRequest: () => (clientId: number, message: RpcMessage.FromClientEncoded) => Effect.Effect<void>
) => {
  const interruptedEarly = new Wire.Recent(4096)
  const route = (inbox: string, message: RpcMessage.FromClientEncoded, reply: string): Effect.Effect<void> => {
    if (message._tag === "Request") {
      const client = clients.of(inbox)
      const key = String(message.id)
      // interrupted by its client before it got here
      if (interruptedEarly.take(`${inbox} ${key}`)) return Effect.void
      // a notification is never answered: nothing to keep for it
      if (message.isNotification !== true) {
        client.requests.set(key, reply)
        client.idleSince = undefined
      }
      return writeRequest()(client.id, message)
    }
    // the rest is about requests here: from a client that has none, there is nothing to do
    const client = clients.find(inbox)
    if (message._tag === "Interrupt" && (client === undefined || !client.requests.has(String(message.requestId)))) {
      interruptedEarly.add(`${inbox} ${String(message.requestId)}`)
      return Effect.void
    }
    return client === undefined ? Effect.void : writeRequest()(client.id, message)
  }
  return (msg: Msg): Effect.Effect<void> => {
    const reply = msg.reply
    const inbox = Wire.inboxOf(reply)
    if (inbox === undefined || reply === undefined) return Effect.void
    const parser = clients.find(inbox)?.parser ?? clients.parserFor()
    let decoded: ReadonlyArray<unknown>
    try {
      decoded = parser.decode(msg.data)
    } catch (cause) {
      const client = clients.find(inbox)
      const defect = { _tag: "Defect", defect: `undecodable message: ${String(cause)}` }
      return client === undefined ? Effect.void : toClient(client, defect)
    }
    return decoded.length === 1
      ? route(inbox, decoded[0] as RpcMessage.FromClientEncoded, reply)
      : Effect.forEach(decoded, (m) => route(inbox, m as RpcMessage.FromClientEncoded, reply), { discard: true })
  }
}

/**
 * Every interval, a heartbeat to each client with requests here; a client
 * gone is disconnected, and so is one idle for `IDLE_BEATS` intervals (a client that
 * comes back is a new one: nothing is kept per client between requests).
 */
const heartbeats = (
  nats: NatsClientShape,
  clients: Clients,
  instance: string,
  millis: number,
  disconnects: Queue.Queue<number>
) => {
  const disconnect = (client: Client) =>
    Effect.suspend(() => {
      clients.forget(client)
      return Queue.offer(disconnects, client.id)
    })
  const beat = (client: Client): Effect.Effect<void> => {
    if (client.requests.size === 0) {
      return client.idleSince !== undefined && Date.now() - client.idleSince > IDLE_BEATS * millis
        ? disconnect(client)
        : Effect.void
    }
    const heartbeat = Wire.encodeHeartbeat({ instance, requests: Array.from(client.requests.keys()) })
    return nats.request(Wire.heartbeatSubject(client.inbox), heartbeat, { timeout: millis }).pipe(
      Effect.matchEffect({
        onSuccess: () => Effect.sync(() => void (client.misses = 0)),
        onFailure: (error) =>
          error.reason._tag === "NoResponders" || ++client.misses >= 3 ? disconnect(client) : Effect.void
      })
    )
  }
  // a round every interval, whatever the previous one still waits for (a dead client's timeout)
  return Effect.suspend(() => Effect.forEach(clients.all(), beat, { concurrency: "unbounded", discard: true })).pipe(
    Effect.forkChild,
    Effect.repeat(Schedule.spaced(millis))
  )
}

/** The protocol, and `drain`: stop taking requests and wait (up to `millis`) for those here to end. */
export const make = Effect.fnUntraced(function*(nats: NatsClientShape, options: ServerOptions) {
  const serialization = yield* RpcSerialization.RpcSerialization
  const scope: Scope.Scope = yield* Effect.scope
  const direct = Wire.instanceSubject(options.subject, nuid.next())
  const instanceHeaders = natsHeaders()
  instanceHeaders.set(Wire.INSTANCE_HEADER, direct)
  // one entry per client found gone, taken at once by the server
  const disconnects = yield* Queue.unbounded<number>()
  const clients = new Clients(serialization)
  const { send, toClient } = sender(nats, clients, instanceHeaders)

  // the server's intake, given by the protocol (it buffers until the server runs)
  let writeRequest!: (clientId: number, message: RpcMessage.FromClientEncoded) => Effect.Effect<void>
  const protocol = yield* RpcServer.Protocol.make((write) => {
    writeRequest = write
    return Effect.succeed({
      disconnects,
      send,
      end: (clientId: number) =>
        Effect.sync(() => {
          const client = clients.get(clientId)
          if (client !== undefined) clients.forget(client)
        }),
      clientIds: Effect.sync(() => clients.ids()),
      initialMessage: Effect.succeedNone,
      supportsAck: true,
      supportsTransferables: false,
      supportsSpanPropagation: true,
      supportsNotifications: false,
      codecFor: serialization.codecFor
    })
  })
  const onMessage = receiver(clients, toClient, () => writeRequest)

  // new requests (queue group), this instance's follow-ups, every instance's
  const subscribe = (subject: string, queue?: string) =>
    acquire(nats.core, subject, {
      queue,
      bufferSize: options.bufferSize,
      maxBytes: 64 * 1024 * 1024,
      overflow: "dropNewest"
    })
  const serve = Effect.fnUntraced(function*(subject: string, queue?: string) {
    const s = yield* subscribe(subject, queue)
    yield* s.confirmed
    return { stop: s.stop, handled: yield* Effect.forkIn(Stream.runForEach(s.messages, onMessage), scope) }
  })
  const intake = yield* serve(options.subject, options.queue)
  yield* serve(direct)
  yield* serve(Wire.allSubject(options.subject))
  yield* Effect.forkIn(heartbeats(nats, clients, direct, options.heartbeatMillis, disconnects), scope)

  // the intake drained (what was on its way handed to the server), then every request here ended
  const drain = (millis: number) =>
    Effect.suspend(() => {
      intake.stop()
      return Fiber.await(intake.handled).pipe(Effect.andThen(clients.idle), Effect.timeoutOption(millis))
    })

  return { protocol, drain, instance: direct, clients: () => clients.ids().size }
})
