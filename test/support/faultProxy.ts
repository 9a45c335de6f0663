/**
 * A TCP fault proxy for tests and chaos runs: listens on 127.0.0.1 on a free
 * port and forwards every connection to a target (a nats-server), until told
 * otherwise at runtime:
 *
 * - `stall`: stop forwarding bytes in both directions while keeping every
 *   socket open, current and new ones: a connection that *hangs* (a network
 *   partition, a frozen peer), not one that closes. Nothing accumulates in
 *   the proxy: both sockets of every pair are paused (`socket.pause()`), so
 *   the kernel's socket buffers fill and TCP backpressure stops the sender;
 *   at most the one chunk read before the pause is held per direction.
 * - `resume`: forward again (what was held, then whatever the sockets buffered).
 * - `cut`: destroy every current connection (both sides): a connection that
 *   closes. New connections are accepted afterwards.
 *
 * Forwarding follows backpressure (a side whose peer's write buffer is full
 * is paused until it drains), so a fast sender never makes the proxy buffer
 * without bound either. Socket errors (resets, EPIPE, a target that refuses)
 * are handled: they close that pair, never the process. A connection to a
 * target that is down is accepted and closed at once (like a refused dial
 * for the client).
 *
 * The proxy is a scoped resource: `make` listens, the scope's release closes
 * the listener and destroys every connection.
 *
 * @example
 * ```ts
 * const proxy = yield* FaultProxy.make({ port: server.nodes[0].port })
 * const client = yield* NatsClient.make({ servers: proxy.url, pingInterval: "500 millis" })
 * yield* proxy.stall()
 * yield* Effect.sleep("3 seconds")
 * yield* proxy.resume()
 * ```
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Net from "node:net"

/** Where the proxy forwards to: a `host:port` (host default 127.0.0.1) or a URL such as `nats://127.0.0.1:4222`. */
export type Target = { readonly host?: string | undefined; readonly port: number } | string

/** A running fault proxy (see the module documentation). */
export interface FaultProxy {
  /** The URL clients connect to, `nats://127.0.0.1:PORT`. */
  readonly url: string
  /** The port the proxy listens on. */
  readonly port: number
  /** Stop forwarding in both directions, keeping the sockets open (also for connections accepted while stalled). */
  readonly stall: () => Effect.Effect<void>
  /** Forward again. */
  readonly resume: () => Effect.Effect<void>
  /** Destroy every current connection (both sides). */
  readonly cut: () => Effect.Effect<void>
  /** Whether the proxy is stalled now. */
  readonly isStalled: () => boolean
  /** Connections open now (client side). */
  readonly open: () => number
  /** Connections accepted since the start. */
  readonly accepted: () => number
}

/** One direction of a proxied connection. */
interface Direction {
  readonly from: Net.Socket
  readonly to: Net.Socket
  /** `to`'s write buffer is full: `from` stays paused until `to` drains. */
  blocked: boolean
  /** Chunks read while stalled (at most the one read before the pause took effect). */
  held: Array<Buffer>
  /** `from` ended while stalled: end `to` once the held chunks are written. */
  ended: boolean
}

interface Pair {
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  readonly directions: readonly [Direction, Direction]
}

const parseTarget = (target: Target): { readonly host: string; readonly port: number } => {
  if (typeof target !== "string") return { host: target.host ?? "127.0.0.1", port: target.port }
  const url = new URL(target)
  const port = Number(url.port)
  if (!Number.isInteger(port) || port <= 0) throw new Error(`faultProxy: no port in target ${target}`)
  return { host: url.hostname === "localhost" ? "127.0.0.1" : url.hostname, port }
}

class Relay {
  stalled = false
  acceptedCount = 0
  readonly pairs = new Set<Pair>()

  readonly target: { readonly host: string; readonly port: number }

  constructor(target: { readonly host: string; readonly port: number }) {
    this.target = target
  }

  /** Wires a freshly accepted client socket to a new upstream connection. */
  accept(client: Net.Socket): void {
    this.acceptedCount++
    const upstream = Net.connect({ host: this.target.host, port: this.target.port })
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const up = this.direction(client, upstream)
    const down = this.direction(upstream, client)
    const pair: Pair = { client, upstream, directions: [up, down] }
    this.pairs.add(pair)
    const close = () => {
      if (!this.pairs.delete(pair)) return
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) {
      // an error (a reset, EPIPE, a refused dial) closes the pair; "close" follows every error
      socket.on("error", close)
      socket.on("close", close)
    }
    if (this.stalled) {
      client.pause()
      upstream.pause()
    }
  }

  private direction(from: Net.Socket, to: Net.Socket): Direction {
    const d: Direction = { from, to, blocked: false, held: [], ended: false }
    from.on("data", (chunk: Buffer) => {
      if (this.stalled) {
        // read before the pause took effect: hold it (one chunk, bounded by the socket's read size)
        d.held.push(chunk)
        from.pause()
        return
      }
      this.write(d, chunk)
    })
    from.on("end", () => {
      if (this.stalled || d.held.length > 0) d.ended = true
      else to.end()
    })
    to.on("drain", () => {
      d.blocked = false
      if (!this.stalled) from.resume()
    })
    return d
  }

  private write(d: Direction, chunk: Buffer): void {
    if (d.to.destroyed) return
    if (!d.to.write(chunk)) {
      d.blocked = true
      d.from.pause()
    }
  }

  stall(): void {
    this.stalled = true
    for (const pair of this.pairs) {
      pair.client.pause()
      pair.upstream.pause()
    }
  }

  resume(): void {
    if (!this.stalled) return
    this.stalled = false
    for (const pair of this.pairs) {
      for (const d of pair.directions) {
        const held = d.held
        d.held = []
        for (const chunk of held) this.write(d, chunk)
        if (d.ended) d.to.end()
        else if (!d.blocked) d.from.resume()
      }
    }
  }

  cut(): void {
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair)
      pair.client.destroy()
      pair.upstream.destroy()
    }
  }
}

/**
 * Starts a fault proxy to `target` in the current scope (listening on
 * 127.0.0.1, a free port); the scope's release closes it and every
 * connection through it.
 */
export const make = (target: Target): Effect.Effect<FaultProxy, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly proxy: Relay; readonly server: Net.Server; readonly port: number }, Error>((resume) => {
      let proxy: Relay
      try {
        proxy = new Relay(parseTarget(target))
      } catch (error) {
        resume(Effect.fail(error instanceof Error ? error : new Error(String(error))))
        return
      }
      const server = Net.createServer({ noDelay: true }, (socket) => proxy.accept(socket))
      const onListenError = (error: Error) => resume(Effect.fail(error))
      server.once("error", onListenError)
      server.listen(0, "127.0.0.1", () => {
        server.off("error", onListenError)
        // later listener errors (none expected once listening) must not crash the process
        server.on("error", () => undefined)
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ proxy, server, port }))
      })
    }),
    ({ proxy, server }) =>
      Effect.callback<void>((resume) => {
        // stop accepting first; the close completes once every connection is gone
        server.close(() => resume(Effect.void))
        proxy.cut()
      })
  ).pipe(
    Effect.map(({ port, proxy }): FaultProxy => ({
      url: `nats://127.0.0.1:${port}`,
      port,
      stall: () => Effect.sync(() => proxy.stall()),
      resume: () => Effect.sync(() => proxy.resume()),
      cut: () => Effect.sync(() => proxy.cut()),
      isStalled: () => proxy.stalled,
      open: () => proxy.pairs.size,
      accepted: () => proxy.acceptedCount
    }))
  )
