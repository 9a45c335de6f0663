/**
 * The server's refusal of a subscription at the account's or the user's
 * subscription limit.
 *
 * The server answers such a `SUB` with `-ERR 'maximum subscriptions
 * exceeded'`, naming no subject, and keeps the connection; nats.js only
 * reports it on its status iterator, so the subscription would wait forever
 * for messages that never come. The server handles a connection's protocol in
 * order: a `PING` sent right after the `SUB` is answered after its `-ERR`, and
 * nats.js records the `-ERR` (as the protocol's last error) before it resolves
 * the flush. Subscriptions made in the same round trip cannot be told apart:
 * when one is refused, they all are reported refused (and unsubscribed).
 *
 * @internal
 */
import type { NatsConnection } from "@nats-io/nats-core"
import { errors as natsErrors } from "@nats-io/nats-core"

interface WithProtocol {
  readonly protocol?: { readonly lastError?: Error | undefined }
}

const lastError = (nc: NatsConnection): Error | undefined => (nc as WithProtocol).protocol?.lastError

/**
 * Resolves with the server's refusal of the subscription just made (call it
 * right after `subscribe`, in the same tick), or `undefined` when the server
 * took it; rejects as the flush does when the connection closes first. While
 * the connection is down (nats.js rejects the flush at once) the answer is
 * `undefined`: nats.js sends the subscription again on the reconnect.
 */
export const refusal = (nc: NatsConnection): Promise<Error | undefined> => {
  const before = lastError(nc)
  return nc.flush().then(() => {
    const after = lastError(nc)
    return after !== before && after instanceof natsErrors.ProtocolError &&
        /maximum subscriptions exceeded/i.test(after.message)
      ? after
      : undefined
  }, (cause: unknown) => {
    if (nc.isClosed()) throw cause
    return undefined
  })
}
