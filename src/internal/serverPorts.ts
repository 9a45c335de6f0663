/**
 * Port allocation for `NatsServer`: picking free loopback ports for the nodes,
 * and recognising in nats-server's output that one of its ports was taken.
 *
 * A free port is found by listening on port 0 and closing the listener again
 * before nats-server binds the port, so another process can take it in
 * between. `NatsServer` detects that from the exiting server's stderr
 * ({@link takenPort}) and starts the whole server again with fresh ports.
 *
 * {@link PortPicker} is the picking strategy, a `Context.Reference` that
 * defaults to {@link pickFreePorts}: a test provides its own picker to make
 * the first pick predictable (and take those ports itself).
 *
 * @internal
 */
import { Context } from "effect"
import * as Net from "node:net"

/** The ports of one node; `clusterPort` only for a clustered server. */
export interface NodePorts {
  readonly port: number
  readonly monitorPort: number
  readonly clusterPort?: number | undefined
}

/** Pick ports for `nodes` nodes (with a cluster port each when `clustered`). */
export type PickPorts = (nodes: number, clustered: boolean) => Promise<ReadonlyArray<NodePorts>>

/** `count` distinct loopback ports that were free a moment ago (listen on port 0, then close). */
export const freePorts = (count: number): Promise<Array<number>> =>
  new Promise((resolve, reject) => {
    const servers: Array<Net.Server> = []
    const ports: Array<number> = []
    const closeAll = () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    const next = () => {
      if (ports.length === count) {
        closeAll().then(() => resolve(ports), reject)
        return
      }
      const server = Net.createServer()
      servers.push(server)
      server.once("error", (e) => closeAll().then(() => reject(e), reject))
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        if (address === null || typeof address === "string") {
          closeAll().then(() => reject(new Error("unexpected server address")), reject)
          return
        }
        ports.push(address.port)
        next()
      })
    }
    next()
  })

/** The default {@link PickPorts}: fresh {@link freePorts} for every node. */
export const pickFreePorts: PickPorts = async (nodes, clustered) => {
  const stride = clustered ? 3 : 2
  const ports = await freePorts(nodes * stride)
  return Array.from({ length: nodes }, (_, index): NodePorts => {
    const base = index * stride
    return {
      port: ports[base] ?? 0,
      monitorPort: ports[base + 1] ?? 0,
      ...(clustered ? { clusterPort: ports[base + 2] ?? 0 } : {})
    }
  })
}

/** The port-picking strategy of `NatsServer.make`; tests replace it with `Effect.provideService`. */
export const PortPicker = Context.Reference<PickPorts>("effect-nats/internal/serverPorts/PortPicker", {
  defaultValue: () => pickFreePorts
})

/**
 * nats-server (checked with 2.9.10) exits with a fatal line carrying Go's
 * `listen tcp HOST:PORT: bind: address already in use` when a port is taken:
 *
 * - client: `[FTL] Error listening on port: 127.0.0.1:P, "listen tcp 127.0.0.1:P: bind: address already in use"`
 * - monitor: `[FTL] Can't start monitoring: can't listen to the monitor port: listen tcp 127.0.0.1:P: bind: address already in use`
 * - cluster: `[FTL] Error listening on router port: P - listen tcp 127.0.0.1:P: bind: address already in use`
 */
const IN_USE = /listen tcp \S*:(\d+): bind: address already in use/

/** The port a server's output (stderr lines) says was already in use, if any; the last such line wins. */
export const takenPort = (lines: ReadonlyArray<string>): number | undefined => {
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = IN_USE.exec(lines[i] ?? "")
    if (match !== null) return Number(match[1])
  }
  return undefined
}
