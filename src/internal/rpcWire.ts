/**
 * The wire of Effect RPC over NATS, shared by the server and the client
 * protocols (see `layers/NatsRpc.ts` for the design).
 *
 * Subjects, for an RPC group served on `S` by instances `I` and called by a
 * client whose inbox is `B`:
 * - `S` (queue group): new requests, each with the reply subject `B.<n>`
 *   (`n` counts the client's requests): its responses go there, so a 503
 *   "no responders" there names the request it is about.
 * - `S.<I>`: the follow-ups of a request (acks, interrupts) once the client
 *   knows which instance took it; `S._all`: every instance (an interrupt
 *   before that, a client's `Eof`).
 * - `B.c`: what an instance sends a client outside any request (defects,
 *   pongs); `B.h`: the instances' heartbeats, requests the client answers.
 *
 * @internal
 */
import type { Msg } from "@nats-io/nats-core"

/** On a request's first chunk: the instance (its direct subject) that handles it. */
export const INSTANCE_HEADER = "Nats-Rpc-Instance"

/** The subject every instance of `subject` listens on. */
export const allSubject = (subject: string) => `${subject}._all`

/** The subject of one instance. */
export const instanceSubject = (subject: string, instance: string) => `${subject}.${instance}`

/** A client's subject for what is not about one request. */
export const clientSubject = (inbox: string) => `${inbox}.c`

/** A client's heartbeat subject. */
export const heartbeatSubject = (inbox: string) => `${inbox}.h`

/** The client inbox of a reply subject (`B.<anything>` → `B`), `undefined` when there is none. */
export const inboxOf = (reply: string | undefined): string | undefined => {
  if (reply === undefined) return undefined
  const dot = reply.lastIndexOf(".")
  return dot <= 0 ? undefined : reply.slice(0, dot)
}

/** A heartbeat: the instance, and the requests of this client it is handling. */
export interface Heartbeat {
  readonly instance: string
  readonly requests: ReadonlyArray<string>
}

export const encodeHeartbeat = (heartbeat: Heartbeat): string =>
  JSON.stringify({ i: heartbeat.instance, r: heartbeat.requests })

export const decodeHeartbeat = (msg: Msg): Heartbeat | undefined => {
  try {
    const value = JSON.parse(msg.string()) as { readonly i?: unknown; readonly r?: unknown }
    if (typeof value.i !== "string" || !Array.isArray(value.r)) return undefined
    return { instance: value.i, requests: value.r.map(String) }
  } catch {
    return undefined
  }
}

/** The server's "no responders" answer to a request. */
export const isNoResponders = (msg: Msg): boolean => msg.data.length === 0 && msg.headers?.code === 503

/**
 * Keys remembered for a while, at most `capacity` (the oldest forgotten
 * first): the interrupts an instance received for requests it has not seen.
 */
export class Recent {
  private readonly keys = new Set<string>()
  private readonly capacity: number
  constructor(capacity: number) {
    this.capacity = capacity
  }
  add(key: string) {
    this.keys.add(key)
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.values().next()
      if (oldest.done !== true) this.keys.delete(oldest.value)
    }
  }
  /** Whether `key` was added; forgets it. */
  take(key: string): boolean {
    return this.keys.delete(key)
  }
}
