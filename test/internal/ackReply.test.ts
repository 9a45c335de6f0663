import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as AckReply from "../../src/internal/ackReply.ts"

const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,12}$/))
const Count = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 40 }))

describe("AckReply", () => {
  it("reads a JetStream message's stored time from both reply formats (tm token)", () => {
    assert.closeTo(AckReply.storedMillis("$JS.ACK.ORDERS.w.1.42.7.1700000000123456789.3") ?? 0, 1700000000123.457, 0.01)
    assert.strictEqual(AckReply.storedMillis("$JS.ACK._.hash.ORDERS.w.1.42.7.1700000000000000000.3.rnd"), 1700000000000)
    assert.isUndefined(AckReply.storedMillis("_INBOX.x"))
    assert.isUndefined(AckReply.storedMillis("$JS.ACK.too.short"))
    assert.isUndefined(AckReply.storedMillis(undefined))
  })

  it.prop(
    "every field, in both formats, is the token a split would give",
    [Name, Name, Count, Count, Count, Count, Count, Schema.Boolean],
    ([stream, consumer, delivered, sseq, cseq, tm, pending, long]) => {
      const fields = [stream, consumer, delivered, sseq, cseq, tm, pending].map(String)
      const reply = long ? `$JS.ACK.hub.ACCHASH.${fields.join(".")}.rnd` : `$JS.ACK.${fields.join(".")}`
      assert.strictEqual(AckReply.text(reply, AckReply.Field.stream), stream)
      assert.strictEqual(AckReply.text(reply, AckReply.Field.consumer), consumer)
      assert.strictEqual(AckReply.number(reply, AckReply.Field.delivered), delivered)
      assert.strictEqual(AckReply.number(reply, AckReply.Field.streamSequence), sseq)
      assert.strictEqual(AckReply.number(reply, AckReply.Field.consumerSequence), cseq)
      assert.strictEqual(AckReply.number(reply, AckReply.Field.storedNanos), tm)
      assert.strictEqual(AckReply.number(reply, AckReply.Field.pending), pending)
    }
  )
})
