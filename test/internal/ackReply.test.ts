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
    "parse reads every field, in both formats: the token a split would give",
    [Name, Name, Count, Count, Count, Count, Count, Schema.Boolean],
    ([stream, consumer, delivered, sseq, cseq, tm, pending, long]) => {
      const fields = [stream, consumer, delivered, sseq, cseq, tm, pending].map(String)
      const reply = long ? `$JS.ACK.hub.ACCHASH.${fields.join(".")}.rnd` : `$JS.ACK.${fields.join(".")}`
      const info = AckReply.parse(reply)
      assert.deepStrictEqual(
        info === undefined ? undefined : {
          stream: info.stream,
          consumer: info.consumer,
          delivered: info.delivered,
          streamSequence: info.streamSequence,
          consumerSequence: info.consumerSequence,
          storedNanos: info.storedNanos,
          pending: info.pending
        },
        { stream, consumer, delivered, streamSequence: sseq, consumerSequence: cseq, storedNanos: tm, pending }
      )
    }
  )

  it("parse refuses what is not a JetStream reply subject", () => {
    for (
      const reply of [
        undefined,
        "_INBOX.abc",
        "$JS.ACK.S.c.1.2.3.4",
        "$JS.ACK.S.c.1.2.3.4.5.6",
        "$JS.ACK.S.c.x.2.3.4.5",
        "$JS.ACK.S.c.1..3.4.5",
        "$JS.ACK.S.c.1.2.3.4.-5",
        "$JS.ACK.d.h.S.c.1.2.3.4.5.r.extra"
      ]
    ) assert.isUndefined(AckReply.parse(reply), String(reply))
    assert.strictEqual(AckReply.parse("$JS.ACK.d.h.S.c.1.2.3.4.5.r")?.stream, "S")
  })
})
