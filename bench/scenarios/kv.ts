/**
 * Key-Value scenarios: awaited puts and gets, one at a time, on a memory
 * bucket (history 1). Raw: `@nats-io/kv`'s bucket (`kv.put` / `kv.get`);
 * effect: `KeyValue.make` with the bytes codec, the same calls as Effects.
 * Both sides on their own connection to the same server.
 */
import type { KV } from "@nats-io/kv"
import { Kvm } from "@nats-io/kv"
import { Effect, Option, Stream } from "effect"
import { NatsClient } from "../../src/index.ts"
import * as KeyValue from "../../src/services/KeyValue.ts"
import type { Context, Scenario } from "../harness.ts"
import type { Clients } from "./core.ts"

const value = new Uint8Array(128).fill(118)
const keys = Array.from({ length: 100 }, (_, i) => `key.${i}`)

const rate = (n: number, startedMs: number) => n / ((performance.now() - startedMs) / 1000)

const count = (ctx: Context) => ctx.quick ? 1000 : 10_000

export const kvScenarios = (clients: Clients): ReadonlyArray<Scenario> => {
  let raw: KV | undefined
  let ours: KeyValue.KeyValueShape<Uint8Array> | undefined
  const open = async () => {
    if (raw === undefined) {
      raw = await new Kvm(clients.rawPub).create("BENCH_KV", { storage: "memory" as never, history: 1 })
      for (const k of keys) await raw.put(k, value)
    }
    if (ours === undefined) {
      ours = await Effect.runPromise(
        Effect.provideService(
          KeyValue.make({ bucket: "BENCH_KV" }),
          NatsClient.NatsClient,
          clients.pub
        )
      )
    }
    return { raw, ours }
  }
  /** A bucket of `n` keys (written once), for the watch scenarios. */
  const watched = new Map<number, string>()
  const watchBucket = async (n: number) => {
    const existing = watched.get(n)
    if (existing !== undefined) return existing
    const name = `BENCH_KV_WATCH_${n}`
    const kv = await new Kvm(clients.rawPub).create(name, { storage: "memory" as never, history: 1 })
    for (let i = 0; i < n; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, n - i) }, (_, j) => kv.put(`k.${i + j}`, value)))
    }
    watched.set(n, name)
    return name
  }
  const watchCount = (ctx: Context) => ctx.quick ? 5000 : 50_000
  return [
    {
      name: "kv-watch",
      description:
        "Key-Value watch of a bucket of 50,000 keys (128 B), from opening it to its last initial value (raw kv.watch vs KeyValue.watch)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.9, text: ">= 0.90" }],
      raw: async (ctx) => {
        const n = watchCount(ctx)
        const kv = await new Kvm(clients.rawSub).open(await watchBucket(n))
        const started = performance.now()
        const iterator = await kv.watch()
        let seen = 0
        for await (const entry of iterator) {
          if (entry.value.length !== 128) throw new Error("bad entry")
          if (++seen === n) break
        }
        iterator.stop()
        return { "msgs/s": rate(n, started) }
      },
      effect: async (ctx) => {
        const n = watchCount(ctx)
        const bucket = await watchBucket(n)
        return Effect.runPromise(
          Effect.gen(function*() {
            const kv = yield* KeyValue.make({ bucket })
            const started = performance.now()
            yield* kv.watch().pipe(
              Stream.take(n),
              Stream.runForEach((entry) => entry.value?.length === 128 ? Effect.void : Effect.die("bad entry"))
            )
            return { "msgs/s": rate(n, started) }
          }).pipe(Effect.provideService(NatsClient.NatsClient, clients.sub))
        )
      }
    },
    {
      name: "kv-put",
      description: "Key-Value put, one at a time, awaited, 128 B values over 100 keys (raw kv.put vs KeyValue.put)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.9, text: ">= 0.90" }],
      raw: async (ctx) => {
        const { raw } = await open()
        const n = count(ctx)
        const started = performance.now()
        for (let i = 0; i < n; i++) await raw.put(keys[i % keys.length] ?? "key.0", value)
        return { "msgs/s": rate(n, started) }
      },
      effect: async (ctx) => {
        const { ours } = await open()
        const n = count(ctx)
        const started = performance.now()
        await Effect.runPromise(Effect.gen(function*() {
          for (let i = 0; i < n; i++) yield* ours.put(keys[i % keys.length] ?? "key.0", value)
        }))
        return { "msgs/s": rate(n, started) }
      }
    },
    {
      name: "kv-get",
      description: "Key-Value get, one at a time, awaited, of 100 keys holding 128 B (raw kv.get vs KeyValue.get)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.9, text: ">= 0.90" }],
      raw: async (ctx) => {
        const { raw } = await open()
        const n = count(ctx)
        const started = performance.now()
        for (let i = 0; i < n; i++) {
          const entry = await raw.get(keys[i % keys.length] ?? "key.0")
          if (entry === null || entry.value.length !== 128) throw new Error("bad entry")
        }
        return { "msgs/s": rate(n, started) }
      },
      effect: async (ctx) => {
        const { ours } = await open()
        const n = count(ctx)
        const started = performance.now()
        await Effect.runPromise(Effect.gen(function*() {
          for (let i = 0; i < n; i++) {
            const entry = yield* ours.get(keys[i % keys.length] ?? "key.0")
            if (Option.isNone(entry) || entry.value.value.length !== 128) return yield* Effect.die("bad entry")
          }
        }))
        return { "msgs/s": rate(n, started) }
      }
    }
  ]
}
