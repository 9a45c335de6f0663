/**
 * The pricing example on the article's wire contract, against a plain nats.js
 * client that behaves as the article's Go programs do (`json.Marshal` of
 * `PriceRequest` / `PriceResponse {price, error,omitempty}`, no headers).
 */
import { assert, describe, layer } from "@effect/vitest"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import * as Pricing from "../../examples/pricing.ts"
import { LocalNats, NatsServer, Rpc } from "../../src/index.ts"

const decoder = new TextDecoder()

/** A plain nats.js connection, closed with the scope: the "Go" side. */
const foreign = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  return yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: server.url })),
    (nc) => Effect.promise(() => nc.close())
  )
})

describe("the article's pricing contract", () => {
  layer(LocalNats.layer({ server: { jetstream: false }, client: { logEvents: false } }), {
    excludeTestServices: true
  })("with a plain client in the article's role", (it) => {
    it.effect("the article's client reads our service: a price, or price 0 with an error", () =>
      Effect.gen(function*() {
        yield* Pricing.servePricing
        const nc = yield* foreign
        const ask = (productId: string) =>
          Effect.promise(() => nc.request("pricing.lookup", JSON.stringify({ product_id: productId }))).pipe(
            Effect.map((msg) => JSON.parse(decoder.decode(msg.data)) as { price: number; error?: string })
          )
        assert.deepStrictEqual(yield* ask("p-1"), { price: 4999 })
        const unknown = yield* ask("nope")
        assert.strictEqual(unknown.price, 0)
        assert.include(unknown.error ?? "", "nope")
      }))

    it.effect("our client reads the article's responder: a price, and an error carried in the body", () =>
      Effect.gen(function*() {
        const nc = yield* foreign
        nc.subscribe("pricing.lookup", {
          callback: (_err, msg) => {
            const request = JSON.parse(decoder.decode(msg.data)) as { product_id: string }
            msg.respond(
              JSON.stringify(request.product_id === "gone" ? { price: 0, error: "discontinued" } : { price: 4999 })
            )
          }
        })
        yield* Effect.promise(() => nc.flush())
        assert.deepStrictEqual(yield* Rpc.call(Pricing.PriceLookup, { product_id: "p-1" }), { price: 4999 })
        const failed = yield* Effect.flip(Rpc.call(Pricing.PriceLookup, { product_id: "gone" }))
        assert.instanceOf(failed, Pricing.PriceError)
        if (failed instanceof Pricing.PriceError) assert.strictEqual(failed.error, "discontinued")
      }))
  })
})
