import { Effect, Scope, Exit } from "effect"
import { NatsClient, NatsServer } from "../src/index.ts"
const scope = Effect.runSync(Scope.make())
const run = <A, E>(e: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(scope)(e))
const server = await run(NatsServer.make({ jetstream: false, tls: {} }))
const mtls = await run(NatsServer.make({ jetstream: false, tls: { verify: true } }))
const other = await run(NatsServer.make({ jetstream: false, tls: {} }))
console.log(server.url, server.tls)
const tryConnect = async (label: string, options: NatsClient.NatsClientOptions) => {
  const t = Date.now()
  const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(NatsClient.make({ logEvents: false, connectTimeout: "5 seconds", ...options }), (c) => c.flush)))
  console.log(label, Date.now() - t, "ms", Exit.isSuccess(exit) ? "OK" : JSON.stringify(Exit.isFailure(exit) ? (exit.cause as any).reasons?.[0]?.error?.reason?._tag : "") + " " + String((exit as any).cause).slice(0, 300))
}
const tls = server.tls!
await tryConnect("ca ok", { servers: server.url, tls: { caFile: tls.caFile } })
await tryConnect("no ca", { servers: server.url })
await tryConnect("plain url no tls", { servers: server.url.replace("tls://", "nats://") })
await tryConnect("other CA", { servers: other.url, tls: { caFile: tls.caFile } })
await tryConnect("servername mismatch", { servers: server.url, tls: { caFile: tls.caFile, serverName: "other.example" } })
await tryConnect("mtls without cert", { servers: mtls.url, tls: { caFile: mtls.tls!.caFile } })
await tryConnect("mtls with cert", { servers: mtls.url, tls: { caFile: mtls.tls!.caFile, certFile: mtls.tls!.clientCertFile, keyFile: mtls.tls!.clientKeyFile } })
await tryConnect("mtls other cert", { servers: mtls.url, tls: { caFile: mtls.tls!.caFile, certFile: other.tls!.clientCertFile, keyFile: other.tls!.clientKeyFile } })
await Effect.runPromise(Scope.close(scope, Exit.void))
