import { assert, describe, it, layer } from "@effect/vitest"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { MsgHdrsImpl } from "@nats-io/nats-core/internal"
import { Effect, Schema, Stream } from "effect"
import { LocalNats, NatsClient } from "../../src/index.ts"
import * as RawHeaders from "../../src/internal/rawHeaders.ts"

// names that are, contain, or nearly are the ones looked up
const names = ["traceparent", "TraceParent", "xtraceparent", "traceparent-x", "Nats-Msg-Id", "nats-msg-id", "a"]
const looked = ["traceparent", "Nats-Msg-Id", "nats-msg-id", "a", "absent"]

const Entries = Schema.Array(
  Schema.Tuple([Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: names.length - 1 })), Schema.String])
)

/**
 * A received message as nats.js makes one: its header block and payload in `_rdata` (a Node `Buffer`,
 * as nats.js receives into, or a plain `Uint8Array`), `_msg.hdr` its length.
 */
const received = (block: Uint8Array | undefined, payload = new Uint8Array([1, 2, 3]), buffer = true) => {
  const size = (block?.length ?? 0) + payload.length
  const data = buffer ? Buffer.alloc(size) : new Uint8Array(size)
  if (block !== undefined) data.set(block)
  data.set(payload, block?.length ?? 0)
  return {
    _msg: { hdr: block === undefined ? -1 : block.length },
    _rdata: data,
    _headers: undefined,
    get headers() {
      return block === undefined ? undefined : MsgHdrsImpl.decode(block)
    }
  }
}

describe("RawHeaders", () => {
  it.prop(
    "finds what nats.js' decoded headers give (exact name, trimmed value, the first of several), decoding nothing",
    [Entries, Schema.Boolean],
    ([entries, status]) => {
      const h = status ? natsHeaders(503, "No Responders") : natsHeaders()
      for (const [name, value] of entries) h.append(names[name] ?? "a", value.replace(/[\r\n]/g, " "))
      const block = (h as MsgHdrsImpl).encode()
      const msg = received(block)
      const decoded = MsgHdrsImpl.decode(block)
      for (const carrier of [msg, received(block, undefined, false)]) {
        for (const name of looked) {
          const value = RawHeaders.get(carrier, name)
          assert.strictEqual(value === undefined, !decoded.has(name), name)
          if (value !== undefined) assert.strictEqual(value, decoded.get(name), name)
        }
      }
      // through a JetStream message and an envelope around it
      const envelope: RawHeaders.Carrier & { readonly msg: unknown } = { msg: { msg } }
      assert.strictEqual(RawHeaders.get(envelope, "a"), decoded.has("a") ? decoded.get("a") : undefined)
    }
  )

  it("blocks written by other clients: any whitespace trimmed as nats.js trims; a lone CR ends no line", () => {
    const block = new TextEncoder().encode("NATS/1.0\r\na:\u00a0\u000b x y \f\r\nb:\t\r\n\r\n")
    const decoded = MsgHdrsImpl.decode(block)
    assert.strictEqual(RawHeaders.get(received(block), "a"), decoded.get("a"))
    assert.strictEqual(RawHeaders.get(received(block), "a"), "x y")
    assert.strictEqual(RawHeaders.get(received(block), "b"), "")
    // nats.js refuses to decode this block (a CR in a value); the line still ends at its CRLF
    const loneCr = new TextEncoder().encode("NATS/1.0\r\na: x\ry\r\n\r\n")
    assert.strictEqual(RawHeaders.get(received(loneCr), "a"), "x\ry")
  })

  it("a carrier with headers of its own is read through them, not through the message it holds", () => {
    const own = natsHeaders()
    own.set("traceparent", "mine")
    const inner = natsHeaders()
    inner.set("traceparent", "theirs")
    const carrier = { headers: own, msg: received((inner as MsgHdrsImpl).encode()) }
    assert.strictEqual(RawHeaders.get(carrier, "traceparent"), "mine")
  })

  it("a message without headers, and a carrier that is not nats.js', read through headers", () => {
    assert.isUndefined(RawHeaders.get(received(undefined), "traceparent"))
    const h = natsHeaders()
    h.set("traceparent", "x")
    assert.strictEqual(RawHeaders.get({ headers: h }, "traceparent"), "x")
    assert.isUndefined(RawHeaders.get({ headers: h }, "other"))
    assert.isUndefined(RawHeaders.get({}, "traceparent"))
  })

  layer(LocalNats.layer(), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("reads a received message's headers as nats.js decodes them, and leaves them undecoded", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const messages = yield* nats.subscribeScoped("raw.headers")
        const h = natsHeaders()
        h.append("traceparent", " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ")
        h.append("Nats-Msg-Id", "m-1")
        h.append("Nats-Msg-Id", "m-2")
        h.append("note", "ünïcode ✓")
        yield* nats.publish("raw.headers", "body", { headers: h })
        const [msg] = yield* messages.pipe(Stream.take(1), Stream.runCollect)
        assert.isDefined(msg)
        if (msg === undefined) return
        assert.strictEqual(
          RawHeaders.get(msg, "traceparent"),
          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )
        assert.strictEqual(RawHeaders.get(msg, "Nats-Msg-Id"), "m-1")
        assert.strictEqual(RawHeaders.get(msg, "note"), "ünïcode ✓")
        assert.isUndefined(RawHeaders.get(msg, "nats-msg-id"))
        // nothing decoded yet: nats.js' own getter still decodes the block the same way
        assert.isUndefined((msg as unknown as { readonly _headers: unknown })._headers)
        assert.strictEqual(msg.headers?.get("note"), "ünïcode ✓")
        assert.strictEqual(RawHeaders.get(msg, "Nats-Msg-Id"), "m-1")
      }))
  })
})
