import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, pipe, Result, Schema } from "effect"
import * as Codec from "../../src/schemas/Codec.ts"

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

const Order = Schema.Struct({
  id: Schema.String,
  n: Schema.Finite,
  tags: Schema.Array(Schema.String),
  paid: Schema.Boolean,
  note: Schema.optionalKey(Schema.String)
})
const OrderCodec = Codec.json(Order)

const decodeFailure = <A>(result: Result.Result<A, Codec.DecodeError>): Codec.DecodeError => {
  if (Result.isSuccess(result)) assert.fail(`expected a DecodeError, got ${JSON.stringify(result.success)}`)
  return result.failure
}

const encodeFailure = <A>(result: Result.Result<A, Codec.EncodeError>): Codec.EncodeError => {
  if (Result.isSuccess(result)) assert.fail("expected an EncodeError")
  return result.failure
}

describe("Codec.json", () => {
  it("decodes and encodes", () => {
    assert.strictEqual(OrderCodec.contentType, "application/json")
    const value = { id: "o1", n: 1.5, tags: ["a"], paid: true }
    const bytes = OrderCodec.encode(value)
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) {
      assert.strictEqual(new TextDecoder().decode(bytes.success), JSON.stringify(value))
      assert.deepStrictEqual(OrderCodec.decode(bytes.success), Result.succeed(value))
    }
  })

  it("invalid JSON is a DecodeError holding the SyntaxError", () => {
    const error = decodeFailure(OrderCodec.decode(utf8("{not json")))
    assert.strictEqual(error._tag, "DecodeError")
    assert.include(error.message, "not valid JSON")
    assert.instanceOf(error.cause, SyntaxError)
    assert.strictEqual(error.contentType, "application/json")
    assert.isFalse(error.isRetryable)
  })

  it("wrong shape is a DecodeError with the schema issue", () => {
    const error = decodeFailure(OrderCodec.decode(utf8(JSON.stringify({ id: 1, n: 1, tags: [], paid: true }))))
    assert.include(error.message, "does not match the schema")
    assert.include(error.message, "Expected string")
    assert.include(error.message, "id")
    assert.isTrue(Schema.isSchemaError(error.cause))
  })

  it("invalid UTF-8 and empty payloads are DecodeErrors", () => {
    decodeFailure(OrderCodec.decode(new Uint8Array([0xff, 0xfe, 0x7b])))
    decodeFailure(OrderCodec.decode(new Uint8Array()))
  })

  it("encode failures are EncodeErrors", () => {
    const BigIntCodec = Codec.json(Schema.Struct({ n: Schema.Unknown }))
    const error = encodeFailure(BigIntCodec.encode({ n: 1n }))
    assert.strictEqual(error._tag, "EncodeError")
    assert.include(error.message, "not JSON serialisable")
    const undefinedError = encodeFailure(Codec.json(Schema.Unknown).encode(undefined))
    assert.include(undefinedError.message, "not JSON serialisable")
    const Positive = Codec.json(Schema.Number.check(Schema.isGreaterThan(0)))
    const schemaError = encodeFailure(Positive.encode(-1))
    assert.include(schemaError.message, "does not match the schema")
    assert.isFalse(schemaError.isRetryable)
  })

  it("encodes through schema transformations", () => {
    const DateCodec = Codec.json(Schema.Struct({ at: Schema.NumberFromString }))
    const bytes = DateCodec.encode({ at: 5 })
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) {
      assert.strictEqual(new TextDecoder().decode(bytes.success), "{\"at\":\"5\"}")
      assert.deepStrictEqual(DateCodec.decode(bytes.success), Result.succeed({ at: 5 }))
    }
  })

  // JSON cannot represent -0; normalise it so that the round trip is exact.
  const orders = Arbitrary.schema(Order).pipe(Arbitrary.map((o) => ({ ...o, n: o.n + 0 })))

  it.prop("round-trips generated values", [orders], ([order]) => {
    const bytes = OrderCodec.encode(order)
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) assert.deepStrictEqual(OrderCodec.decode(bytes.success), Result.succeed(order))
  }, { arbitrary: { runs: 300 } })

  it.prop("never throws on arbitrary bytes", [Schema.Uint8Array], ([bytes]) => {
    const result = OrderCodec.decode(bytes)
    if (Result.isFailure(result)) assert.strictEqual(result.failure._tag, "DecodeError")
  })

  it.prop("wrong shapes give DecodeError, not a throw", [Schema.Unknown], ([value]) => {
    const text = JSON.stringify(value)
    if (text === undefined) return
    const result = OrderCodec.decode(utf8(text))
    if (Result.isFailure(result)) assert.strictEqual(result.failure._tag, "DecodeError")
    else assert.isTrue(Schema.is(Order)(result.success))
  })
})

describe("Codec.string", () => {
  it("decodes and encodes UTF-8", () => {
    assert.deepStrictEqual(Codec.string.decode(utf8("héllo 😀")), Result.succeed("héllo 😀"))
    const bytes = Codec.string.encode("\ufeffbom")
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) assert.deepStrictEqual(Codec.string.decode(bytes.success), Result.succeed("\ufeffbom"))
  })

  it("invalid UTF-8 is a DecodeError, unpaired surrogates an EncodeError", () => {
    const error = decodeFailure(Codec.string.decode(new Uint8Array([0x61, 0xc3])))
    assert.include(error.message, "UTF-8")
    const encodeError = encodeFailure(Codec.string.encode("a\ud800b"))
    assert.include(encodeError.message, "surrogate")
  })

  const wellFormed = Arbitrary.schema(Schema.String).pipe(
    Arbitrary.filter((s: string) => Result.isSuccess(Codec.string.encode(s)))
  )

  it.prop("round-trips well-formed unicode strings", [wellFormed], ([s]) => {
    const bytes = Codec.string.encode(s)
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) {
      assert.deepStrictEqual(bytes.success, utf8(s))
      assert.deepStrictEqual(Codec.string.decode(bytes.success), Result.succeed(s))
    }
  }, { arbitrary: { runs: 300 } })
})

describe("Codec.bytes", () => {
  it.prop("is the identity", [Schema.Uint8Array], ([bytes]) => {
    const encoded = Codec.bytes.encode(bytes)
    assert.isTrue(Result.isSuccess(encoded))
    if (Result.isSuccess(encoded)) {
      assert.strictEqual(encoded.success, bytes)
      const decoded = Codec.bytes.decode(encoded.success)
      assert.isTrue(Result.isSuccess(decoded))
      if (Result.isSuccess(decoded)) assert.strictEqual(decoded.success, bytes)
    }
    assert.strictEqual(Codec.bytes.contentType, "application/octet-stream")
  })
})

describe("Codec.fromStringSchema and make", () => {
  const NumberText = Codec.fromStringSchema(Schema.FiniteFromString)

  it("decodes text through a schema", () => {
    assert.deepStrictEqual(NumberText.decode(utf8("42")), Result.succeed(42))
    const error = decodeFailure(NumberText.decode(utf8("forty-two")))
    assert.include(error.message, "does not match the schema")
    assert.deepStrictEqual(NumberText.encode(1.5), Result.succeed(utf8("1.5")))
    assert.strictEqual(NumberText.contentType, "text/plain; charset=utf-8")
    assert.strictEqual(
      Codec.fromStringSchema(Schema.String, { contentType: "text/csv" }).contentType,
      "text/csv"
    )
  })

  // String(-0) is "0": normalise -0 so that the round trip is exact.
  const finite = Arbitrary.schema(Schema.Finite).pipe(Arbitrary.map((n) => n + 0))

  it.prop("round-trips finite numbers", [finite], ([n]) => {
    const bytes = NumberText.encode(n)
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) assert.deepStrictEqual(NumberText.decode(bytes.success), Result.succeed(n))
  })

  it("make builds a custom codec", () => {
    const Flag = Codec.make<boolean>({
      contentType: "application/x-flag",
      encode: (value) => Result.succeed(new Uint8Array([value ? 1 : 0])),
      decode: (bytes) =>
        bytes.length === 1 && (bytes[0] === 0 || bytes[0] === 1)
          ? Result.succeed(bytes[0] === 1)
          : Result.fail(new Codec.DecodeError({ message: "expected one byte 0 or 1" }))
    })
    assert.strictEqual(Flag.contentType, "application/x-flag")
    assert.deepStrictEqual(Flag.decode(new Uint8Array([1])), Result.succeed(true))
    assert.isTrue(Result.isFailure(Flag.decode(new Uint8Array([2]))))
    const check: Codec.Type<typeof Flag> = true
    assert.isTrue(check)
  })
})

describe("Codec.compile (Effect's SchemaJITCompiler, on by default)", () => {
  // a fresh Schema (its own AST) per call: one compiled, one left to the interpreter
  const Rich = () =>
    Schema.Struct({
      id: Schema.String.check(Schema.isMinLength(1)),
      n: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1000 })),
      kind: Schema.Literals(["a", "b"]),
      at: Schema.NumberFromString,
      tags: Schema.Array(Schema.String),
      note: Schema.optionalKey(Schema.String),
      inner: Schema.NullOr(Schema.Struct({ x: Schema.Finite }))
    })
  const compiled = Codec.json(Rich())
  const interpreted = Codec.json(Rich(), { compile: false })
  const keys = ["id", "n", "kind", "at", "tags", "note", "inner"]

  /** Both give the same value, or both fail with the same message. */
  const agree = (bytes: Uint8Array) => {
    const a = compiled.decode(bytes)
    const b = interpreted.decode(bytes)
    assert.strictEqual(a._tag, b._tag)
    if (Result.isSuccess(a) && Result.isSuccess(b)) assert.deepStrictEqual(a.success, b.success)
    if (Result.isFailure(a) && Result.isFailure(b)) assert.strictEqual(a.failure.message, b.failure.message)
  }
  const encoded = (value: unknown): Uint8Array | undefined => {
    const text = JSON.stringify(value)
    return text === undefined ? undefined : utf8(text)
  }
  const json = (value: object): Uint8Array => utf8(JSON.stringify(value))
  const valid = Arbitrary.schema(Rich()).pipe(Arbitrary.map((v) => ({ ...v, n: v.n + 0 })))

  it.prop("decodes valid values as the interpreter does, and encodes them the same", [valid], ([value]) => {
    const a = compiled.encode(value)
    const b = interpreted.encode(value)
    assert.deepStrictEqual(a, b)
    if (Result.isSuccess(b)) agree(b.success)
  }, { arbitrary: { runs: 300 } })

  it.prop(
    "fails where the interpreter fails, with the same issue (one field replaced by anything)",
    [valid, Schema.Unknown, Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 6 }))],
    ([value, other, index]) => {
      const good = interpreted.encode(value)
      if (Result.isFailure(good)) return assert.fail("a generated value encodes")
      const wire = JSON.parse(new TextDecoder().decode(good.success)) as Record<string, unknown>
      const bytes = encoded({ ...wire, [keys[index] ?? "id"]: other })
      if (bytes !== undefined) agree(bytes)
    },
    { arbitrary: { runs: 500 } }
  )

  it.prop("agrees on anything at all", [Schema.Unknown], ([value]) => {
    const bytes = encoded(value)
    if (bytes !== undefined) agree(bytes)
  })

  /** Runs `body` with `globalThis.Function` replaced. */
  const withFunction = (replacement: FunctionConstructor, body: () => void) => {
    const original = globalThis.Function
    globalThis.Function = replacement
    try {
      body()
    } finally {
      globalThis.Function = original
    }
  }

  it("compiles the Schema to JavaScript at its first use; { compile: false } does not", () => {
    let made = 0
    const counting = new Proxy(Function, {
      apply: (target, self, args: Array<string>) => {
        made++
        return Reflect.apply(target, self, args)
      }
    })
    const input = json({ id: "x", n: 1, kind: "a", at: "2", tags: [], inner: null })
    withFunction(counting, () => {
      assert.isTrue(Result.isSuccess(Codec.json(Rich(), { compile: false }).decode(input)))
      assert.strictEqual(made, 0)
      const schema = Rich()
      assert.deepStrictEqual(
        Codec.json(schema).decode(input),
        Result.succeed({ id: "x", n: 1, kind: "a", at: 2, tags: [], inner: null })
      )
      assert.isAbove(made, 0)
      // compiled once per Schema: more codecs of it (one per fetch, say) generate nothing more
      const once = made
      for (let i = 0; i < 3; i++) assert.isTrue(Result.isSuccess(Codec.json(schema).decode(input)))
      assert.strictEqual(made, once)
    })
  })

  it("falls back to the interpreter where new Function is not allowed (a strict CSP)", () => {
    const blocked = new Proxy(Function, {
      apply: () => {
        throw new EvalError("Code generation from strings disallowed for this context")
      }
    })
    withFunction(blocked, () => {
      const codec = Codec.json(Rich())
      const input = json({ id: "x", n: 1, kind: "b", at: "2.5", tags: ["t"], note: "n", inner: { x: 1 } })
      assert.deepStrictEqual(
        codec.decode(input),
        Result.succeed({ id: "x", n: 1, kind: "b", at: 2.5, tags: ["t"], note: "n", inner: { x: 1 } })
      )
      const error = decodeFailure(codec.decode(json({ id: "", n: 1, kind: "a", at: "1", tags: [], inner: null })))
      assert.include(error.message, "does not match the schema")
    })
  })
})

describe("withSubject", () => {
  it("adds the subject to decode and encode errors, data-first and data-last", () => {
    const error = decodeFailure(OrderCodec.decode(utf8("nope")))
    const withSubject = Codec.withSubject(error, "orders.1")
    assert.instanceOf(withSubject, Codec.DecodeError)
    assert.strictEqual(withSubject.subject, "orders.1")
    assert.strictEqual(withSubject.message, error.message)
    assert.strictEqual(withSubject.cause, error.cause)
    assert.isUndefined(error.subject)
    const encodeError = new Codec.EncodeError({ message: "boom" })
    const piped = pipe(encodeError, Codec.withSubject("a.b"))
    assert.instanceOf(piped, Codec.EncodeError)
    assert.strictEqual(piped.subject, "a.b")
  })
})
