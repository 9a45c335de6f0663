/**
 * Request/reply over one wildcard inbox subscription per connection (the
 * scheme nats.js uses), with the state of a request reduced to a map entry
 * and a timer. Unlike nats.js' `request`, a request can be cancelled (its
 * entry and timer go at once), and a request that succeeds allocates no
 * `Error` (nats.js builds one per request to reject its settled deferred:
 * the largest item of a request's client CPU in the profiles).
 *
 * @internal
 */
import type { Msg, MsgHdrs, NatsConnection, Payload, Subscription } from "@nats-io/nats-core"
import { createInbox, TimeoutError } from "@nats-io/nats-core"
import type * as NatsError from "../schemas/NatsError.ts"
import { connectionClosed, disconnected, fromUnknown } from "./errors.ts"
import { refusal } from "./subscriptionLimit.ts"

/** How a request ended: its first reply, "no responders", or a failure (timeout, lost inbox, send error). */
export type Outcome =
  | { readonly _tag: "Reply"; readonly msg: Msg }
  | { readonly _tag: "NoResponders" }
  | { readonly _tag: "Failed"; readonly error: NatsError.NatsError }

export interface RequestMux {
  /**
   * Publishes a request with a reply subject of the shared inbox; `done` is
   * called once: with the first reply, "no responders", or a failure named
   * after `operation` (`Timeout`, `ConnectionClosed` when the inbox closes
   * with the connection, what publishing threw — then at once). Returns the
   * cancel function.
   */
  readonly send: (
    operation: string,
    subject: string,
    payload: Payload | undefined,
    headers: MsgHdrs | undefined,
    timeoutMillis: number,
    done: (outcome: Outcome) => void
  ) => () => void
  /**
   * The server refused a publish to `subject` (a permission violation, which
   * it reports asynchronously): every request pending on that subject fails
   * with it at once instead of timing out.
   */
  readonly refused: (subject: string, cause: unknown) => void
  /**
   * The connection dropped: the replies of the requests sent before it are
   * lost, so each fails at once with `Disconnected` (retryable) instead of
   * waiting out its timeout. Requests sent while disconnected go out on
   * the reconnect and wait for their replies.
   */
  readonly disconnected: () => void
}

/** How the shared inbox ended every pending request. */
type End =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "Dropped" }
  | { readonly _tag: "Lost"; readonly cause: unknown }

/** A request waiting for its reply: one object per request (its timer aside). */
class Pending {
  readonly operation: string
  readonly subject: string
  readonly timeoutMillis: number
  readonly done: (outcome: Outcome) => void
  timer: ReturnType<typeof setTimeout> | undefined = undefined

  constructor(operation: string, subject: string, timeoutMillis: number, done: (outcome: Outcome) => void) {
    this.operation = operation
    this.subject = subject
    this.timeoutMillis = timeoutMillis
    this.done = done
  }

  /** Fails with what was thrown or reported, named after the operation. */
  fail(cause: unknown): void {
    clearTimeout(this.timer)
    this.done({
      _tag: "Failed",
      error: fromUnknown(cause, { operation: this.operation, subject: this.subject, timeoutMillis: this.timeoutMillis })
    })
  }

  settle(outcome: Outcome | End): void {
    clearTimeout(this.timer)
    switch (outcome._tag) {
      case "Closed":
        return this.done({
          _tag: "Failed",
          error: connectionClosed(this.operation, `the connection closed before a reply on ${this.subject}`, {
            subject: this.subject
          })
        })
      case "Dropped":
        return this.done({ _tag: "Failed", error: disconnected(this.operation, this.subject) })
      case "Lost":
        return this.fail(outcome.cause)
      default:
        return this.done(outcome)
    }
  }
}

/**
 * The mux of a connection: made once per connection (by the client's core),
 * shared by core requests and JetStream publishes. The inbox subscription is
 * made by the first request.
 */
export const make = (nc: NatsConnection, inboxPrefix: string | undefined): RequestMux => {
  let subscription: Subscription | undefined
  let prefix = ""
  let next = 0
  const pending = new Map<string, Pending>()

  const endAll = (end: End) => {
    const waiting = [...pending.values()]
    pending.clear()
    for (const entry of waiting) entry.settle(end)
  }

  const subscribe = () => {
    if (subscription !== undefined && !subscription.isClosed()) return
    prefix = `${createInbox(inboxPrefix)}.`
    const own = prefix
    const sub = nc.subscribe(`${own}*`, {
      callback: (err, msg) => {
        if (err !== null) return endAll({ _tag: "Lost", cause: err })
        const token = msg.subject.slice(own.length)
        const entry = pending.get(token)
        if (entry === undefined) return // timed out or cancelled: the late reply is dropped
        pending.delete(token)
        // the server answers 503 with no payload when nobody listens on the subject
        entry.settle(
          msg.data.length === 0 && msg.headers?.code === 503 ? { _tag: "NoResponders" } : { _tag: "Reply", msg }
        )
      }
    })
    subscription = sub
    // at the account's subscription limit the server refuses the inbox: what waits on it fails with the reason
    let dropped = false
    refusal(nc).then((cause) => {
      if (cause === undefined || subscription !== sub) return
      dropped = true
      subscription = undefined
      endAll({ _tag: "Lost", cause })
      sub.unsubscribe()
    }, () => undefined) // the connection ended: the subscription's end settles what waits
    sub.closed.then(
      (err) => {
        if (dropped) return
        if (subscription === sub) subscription = undefined
        endAll(err === undefined ? { _tag: "Closed" } : { _tag: "Lost", cause: err })
      },
      (err: unknown) => {
        if (subscription === sub) subscription = undefined
        endAll({ _tag: "Lost", cause: err })
      }
    )
  }

  const refused = (subject: string, cause: unknown) => {
    for (const [token, entry] of pending) {
      if (entry.subject !== subject) continue
      pending.delete(token)
      entry.fail(cause)
    }
  }

  return {
    refused,
    disconnected: () => endAll({ _tag: "Dropped" }),
    send: (operation, subject, payload, headers, timeoutMillis, done) => {
      const token = (next++).toString(36)
      const entry = new Pending(operation, subject, timeoutMillis, done)
      // setTimeout fires at once beyond 2^31 - 1 ms: longer timeouts are capped (about 24.8 days)
      entry.timer = setTimeout(() => {
        if (pending.delete(token)) entry.fail(new TimeoutError())
      }, Math.min(timeoutMillis, 2_147_483_647))
      pending.set(token, entry)
      try {
        subscribe()
        nc.publish(
          subject,
          payload,
          headers === undefined ? { reply: prefix + token } : { reply: prefix + token, headers }
        )
      } catch (cause) {
        pending.delete(token)
        entry.fail(cause)
      }
      return () => {
        clearTimeout(entry.timer)
        pending.delete(token)
      }
    }
  }
}
