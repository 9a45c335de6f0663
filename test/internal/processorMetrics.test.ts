import { assert, describe, it } from "@effect/vitest"
import { storedMillis } from "../../src/internal/processorMetrics.ts"
describe("storedMillis", () => {
  it("reads a JetStream message's stored time from both reply formats (tm token)", () => {
    assert.closeTo(storedMillis("$JS.ACK.ORDERS.w.1.42.7.1700000000123456789.3") ?? 0, 1700000000123.457, 0.01)
    assert.strictEqual(storedMillis("$JS.ACK._.hash.ORDERS.w.1.42.7.1700000000000000000.3.rnd"), 1700000000000)
    assert.isUndefined(storedMillis("_INBOX.x"))
    assert.isUndefined(storedMillis(undefined))
  })
})
