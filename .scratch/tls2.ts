import { Effect, Scope, Exit, Schedule } from "effect"
import { connect } from "@nats-io/transport-node"
import { NatsServer } from "../src/index.ts"
import * as Fs from "node:fs"
const scope = Effect.runSync(Scope.make())
const mtls = await Effect.runPromise(Scope.provide(scope)(NatsServer.make({ jetstream: false, tls: { verify: true } })))
const t = Date.now()
try {
  const nc = await connect({ servers: mtls.url, tls: { ca: Fs.readFileSync(mtls.tls!.caFile, "utf8") }, waitOnFirstConnect: false, reconnect: true, maxReconnectAttempts: -1, timeout: 3000, noAsyncTraces: true })
  console.log("connected?!", Date.now() - t); await nc.flush().catch((e) => console.log("flush err", e)); 
} catch (e: any) { console.log(Date.now() - t, "ms", e?.constructor?.name, e?.message, e?.code, String(e?.cause), e?.cause?.code) }
for (const v of ["TLSv1.2"]) {
try {
  const nc = await connect({ servers: mtls.url, tls: { ca: Fs.readFileSync(mtls.tls!.caFile, "utf8"), maxVersion: v } as any, waitOnFirstConnect: false, reconnect: false, timeout: 3000 })
  console.log("connected?!"); 
} catch (e: any) { console.log(v, Date.now() - t, "ms", e?.constructor?.name, e?.message, e?.code, String(e?.cause), e?.cause?.code) }
}
console.log((await Effect.runPromise(mtls.logs())).slice(-3))
await Effect.runPromise(Scope.close(scope, Exit.void))
