import { assert, describe, layer } from "@effect/vitest"
import { Effect, Ref, Schema } from "effect"
import { LocalNats, NatsClient, Rpc } from "../../src/index.ts"

class UnknownSku extends Schema.TaggedError<UnknownSku>()("UnknownSku", { sku: Schema.String }) {}
class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { sku: Schema.String, wanted: Schema.Int }) {}

const PriceLookup = Rpc.make("rpc.pricing.lookup", {
  request: Schema.Struct({ sku: Schema.String, quantity: Schema.Int }),
  response: Schema.Struct({ sku: Schema.String, cents: Schema.Int }),
  error: Schema.Union([UnknownSku, OutOfStock])
})

const prices: Record<string, number> = { apple: 50, pear: 70 }

const lookup = ({ quantity, sku }: { readonly sku: string; readonly quantity: number }) => {
  const price = prices[sku]
  if (price === undefined) return Effect.fail(new UnknownSku({ sku }))
  if (quantity > 10) return Effect.fail(new OutOfStock({ sku, wanted: quantity }))
  return Effect.succeed({ sku, cents: price * quantity })
}

describe("Rpc", () => {
  layer(LocalNats.layer(), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("call gets the decoded response of serve", () =>
      Effect.gen(function*() {
        yield* Rpc.serve(PriceLookup, lookup)
        const reply = yield* Rpc.call(PriceLookup, { sku: "apple", quantity: 3 })
        assert.deepStrictEqual(reply, { sku: "apple", cents: 150 })
      }))

    it.effect("a handler's typed failure reaches the caller as that typed error", () =>
      Effect.gen(function*() {
        yield* Rpc.serve(PriceLookup, lookup)
        const unknown = yield* Effect.flip(
          Rpc.call(PriceLookup, { sku: "kiwi", quantity: 1 }, { timeout: "2 seconds" })
        )
        assert.instanceOf(unknown, UnknownSku)
        assert.deepStrictEqual(unknown, new UnknownSku({ sku: "kiwi" }))
        const stock = yield* Effect.flip(Rpc.call(PriceLookup, { sku: "pear", quantity: 11 }))
        assert.instanceOf(stock, OutOfStock)
        if (stock._tag === "OutOfStock") assert.strictEqual(stock.wanted, 11)
      }))

    it.effect("a defect in the handler reaches the caller as ServiceError 500, and serving goes on", () =>
      Effect.gen(function*() {
        const Boom = Rpc.make("rpc.boom", { request: Schema.String, response: Schema.String })
        yield* Rpc.serve(Boom, (s) => s === "die" ? Effect.die(new Error("kaput")) : Effect.succeed(s.toUpperCase()))
        const error = yield* Effect.flip(Rpc.call(Boom, "die"))
        assert.strictEqual(error._tag, "NatsError")
        if (error._tag === "NatsError" && error.reason._tag === "ServiceError") {
          assert.strictEqual(error.reason.code, 500)
          assert.isTrue(error.isRetryable)
        } else assert.fail(`unexpected ${String(error)}`)
        assert.strictEqual(yield* Rpc.call(Boom, "ok"), "OK")
      }))

    it.effect("an undecodable request is answered with ServiceError 400", () =>
      Effect.gen(function*() {
        yield* Rpc.serve(PriceLookup, lookup)
        const Loose = Rpc.make("rpc.pricing.lookup", { request: Schema.Unknown, response: Schema.Unknown })
        const error = yield* Effect.flip(Rpc.call(Loose, { sku: 1 }))
        assert.strictEqual(error._tag, "NatsError")
        if (error._tag === "NatsError" && error.reason._tag === "ServiceError") {
          assert.strictEqual(error.reason.code, 400)
          assert.isFalse(error.isRetryable)
        } else assert.fail(`unexpected ${String(error)}`)
      }))

    it.effect("a request that does not encode fails with EncodeError before sending", () =>
      Effect.gen(function*() {
        const client = yield* NatsClient.NatsClient
        const before = client.connection.stats().outMsgs
        const error = yield* Effect.flip(Rpc.call(PriceLookup, { sku: "apple", quantity: 1.5 }))
        assert.strictEqual(error._tag, "EncodeError")
        assert.strictEqual(client.connection.stats().outMsgs, before)
      }))

    it.effect("no responder: NoResponders; a slow responder: Timeout", () =>
      Effect.gen(function*() {
        const Nobody = Rpc.make("rpc.nobody", { request: Schema.String, response: Schema.String })
        const none = yield* Effect.flip(Rpc.call(Nobody, "x"))
        assert.strictEqual(none._tag === "NatsError" ? none.reason._tag : none._tag, "NoResponders")
        const Slow = Rpc.make("rpc.slow", { request: Schema.String, response: Schema.String })
        yield* Rpc.serve(Slow, () => Effect.never)
        const slow = yield* Effect.flip(Rpc.call(Slow, "x", { timeout: "200 millis" }))
        assert.strictEqual(slow._tag === "NatsError" ? slow.reason._tag : slow._tag, "Timeout")
      }))

    it.effect("responders in a queue group share the calls; each call is answered once", () =>
      Effect.gen(function*() {
        const Who = Rpc.make("rpc.who", { request: Schema.Int, response: Schema.String })
        const served = yield* Ref.make<Array<string>>([])
        for (const name of ["a", "b", "c"]) {
          yield* Rpc.serve(
            Who,
            (n) => Effect.as(Ref.update(served, (all) => [...all, `${name}:${n}`]), name),
            { queue: "who-workers", concurrency: 4 }
          )
        }
        const answers = yield* Effect.forEach(Array.from({ length: 90 }, (_, i) => i), (n) => Rpc.call(Who, n), {
          concurrency: 10
        })
        const log = yield* Ref.get(served)
        assert.strictEqual(log.length, 90)
        assert.strictEqual(new Set(log.map((l) => l.split(":")[1])).size, 90)
        assert.deepStrictEqual(new Set(answers), new Set(["a", "b", "c"]))
      }))
  })
})
