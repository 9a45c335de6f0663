import { Effect, Exit, Scope, Stream } from "effect"
import { NatsServer } from "../../src/index.ts"
import { openClients } from "../scenarios/core.ts"
const count = 1_000_000
const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(Scope.provide(scope)(NatsServer.make({})))
const { rawPub, pub, close } = await openClients(server.url)
const payload = new Uint8Array(128)
const v: Record<string, () => Promise<void>> = {
  raw: async () => { for (let i = 0; i < count; i++) rawPub.publish("x", payload); await rawPub.flush() },
  effect: () => Effect.runPromise(Effect.gen(function*() { yield* pub.publishAll(Stream.range(1, count).pipe(Stream.map(() => ({ subject: "x", payload })))); yield* pub.flush })),
  "effect iterable": () => Effect.runPromise(Effect.gen(function*() { yield* pub.publishAll(Array.from({ length: count }, () => ({ subject: "x", payload }))); yield* pub.flush }))
}
const res = new Map<string, number[]>()
for (let rep = 0; rep < 6; rep++) for (const [k, f] of rep % 2 ? Object.entries(v).reverse() : Object.entries(v)) { const t = performance.now(); await f(); res.set(k, [...(res.get(k) ?? []), Math.round(count / ((performance.now() - t) / 1000))]) }
for (const [k, x] of res) console.log(k.padEnd(20), x.sort((a, b) => a - b).join(" "))
await close(); await Effect.runPromise(Scope.close(scope, Exit.void))
