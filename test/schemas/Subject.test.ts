import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Option, pipe, Result, Schema } from "effect"
import { isNatsError } from "../../src/schemas/NatsError.ts"
import * as Subject from "../../src/schemas/Subject.ts"

const invalidBoth = [
  ["", "empty"],
  [".a", "leading '.'"],
  ["a.", "trailing '.'"],
  ["a..b", "'..'"],
  [".", "empty token"],
  ["a b", "space"],
  ["a\tb", "tab"],
  ["a\rb", "carriage return"],
  ["a\nb", "line feed"],
  [" a", "space"],
  ["a.b ", "space"],
  ["a\u000bb", "U+000B"],
  ["a\u0000b", "U+0000"],
  ["a\u007fb", "U+007F"],
  ["a\u00a0b", "U+00A0"],
  ["a\u2028b", "U+2028"],
  ["a\ud800b", "surrogate"],
  ["a\udc00", "surrogate"]
] as const

const validSubjects = [
  "a",
  "a.b",
  "foo.bar.baz",
  "foo*",
  "a>b",
  "*a",
  ">x",
  "a.b*.c>",
  "orders-1_x",
  "ünïcödé.😀",
  "$JS.API"
]

describe("Subject validation", () => {
  it("rejects malformed subjects and patterns with a clear reason", () => {
    for (const [s, needle] of invalidBoth) {
      const subjectReason = Subject.validateSubject(s)
      const patternReason = Subject.validatePattern(s)
      assert.isDefined(subjectReason, JSON.stringify(s))
      assert.isDefined(patternReason, JSON.stringify(s))
      assert.include(subjectReason, needle)
      assert.include(patternReason, needle)
      assert.isFalse(Subject.isSubject(s))
      assert.isFalse(Subject.isPattern(s))
    }
  })

  it("accepts valid subjects (literal tokens may contain '*' and '>')", () => {
    for (const s of validSubjects) {
      assert.isUndefined(Subject.validateSubject(s), s)
      assert.isUndefined(Subject.validatePattern(s), s)
      assert.isTrue(Subject.isSubject(s))
      assert.isTrue(Subject.isPattern(s))
    }
  })

  it("rejects wildcard tokens in publish subjects", () => {
    for (const s of ["*", ">", "a.*", "a.>", "*.a", "a.*.b"]) {
      assert.include(Subject.validateSubject(s), "wildcard", s)
      assert.isFalse(Subject.isSubject(s))
    }
  })

  it("accepts wildcard patterns with '>' only last", () => {
    for (const s of ["*", ">", "a.*", "a.>", "*.a", "a.*.b", "*.*.>", "a.*.>"]) {
      assert.isUndefined(Subject.validatePattern(s), s)
    }
    for (const s of [">.a", "a.>.b", ">.>", "a.>.*"]) {
      assert.include(Subject.validatePattern(s), "'>' must be the last token", s)
    }
  })

  it("guards reject non-strings", () => {
    assert.isFalse(Subject.isSubject(1))
    assert.isFalse(Subject.isPattern(null))
  })

  it("hasWildcard", () => {
    assert.isTrue(Subject.hasWildcard("a.*"))
    assert.isTrue(Subject.hasWildcard(">"))
    assert.isFalse(Subject.hasWildcard("a.b*"))
    assert.isFalse(Subject.hasWildcard("a>.b"))
  })

  it("validateToken", () => {
    assert.isUndefined(Subject.validateToken("abc"))
    assert.isUndefined(Subject.validateToken("a*"))
    assert.isDefined(Subject.validateToken(""))
    assert.isDefined(Subject.validateToken("a.b"))
    assert.isDefined(Subject.validateToken("*"))
    assert.isDefined(Subject.validateToken(">"))
    assert.isDefined(Subject.validateToken("a b"))
  })
})

describe("Subject schemas and constructors", () => {
  it("Subject schema decodes valid and fails with the reason", () => {
    assert.deepStrictEqual(Schema.decodeUnknownResult(Subject.Subject)("a.b"), Result.succeed("a.b" as Subject.Subject))
    const failure = Schema.decodeUnknownResult(Subject.Subject)("a.*")
    assert.isTrue(Result.isFailure(failure))
    if (Result.isFailure(failure)) assert.include(failure.failure.message, "wildcard token '*'")
    assert.isTrue(Result.isFailure(Schema.decodeUnknownResult(Subject.Subject)(42)))
  })

  it("SubjectPattern schema", () => {
    assert.isTrue(Result.isSuccess(Schema.decodeUnknownResult(Subject.SubjectPattern)("a.*.>")))
    const failure = Schema.decodeUnknownResult(Subject.SubjectPattern)("a.>.b")
    assert.isTrue(Result.isFailure(failure))
    if (Result.isFailure(failure)) assert.include(failure.failure.message, "'>' must be the last token")
  })

  it("a Subject is usable where a SubjectPattern is expected", () => {
    const s: Subject.Subject = Subject.Subject.make("a.b")
    const p: Subject.SubjectPattern = s
    assert.strictEqual(p, "a.b")
  })

  it.effect("subject / pattern fail with NatsError InvalidSubject", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Subject.subject("a.b"), "a.b")
      assert.strictEqual(yield* Subject.pattern("a.>"), "a.>")
      const error = yield* Effect.flip(Subject.subject("a..b"))
      assert.isTrue(isNatsError(error))
      assert.strictEqual(error.reason._tag, "InvalidSubject")
      assert.strictEqual(error.reason.subject, "a..b")
      assert.include(error.message, "empty token")
      assert.isFalse(error.isRetryable)
      const patternError = yield* Effect.flip(Subject.pattern("a.>.b"))
      assert.strictEqual(patternError.reason._tag, "InvalidSubject")
    }))

  it("subjectResult / patternResult", () => {
    assert.deepStrictEqual(Subject.subjectResult("a"), Result.succeed("a" as Subject.Subject))
    assert.isTrue(Result.isFailure(Subject.subjectResult("a.*")))
    assert.isTrue(Result.isSuccess(Subject.patternResult("a.*")))
    assert.isTrue(Result.isFailure(Subject.patternResult("")))
  })
})

/** An obviously correct reference matcher over token arrays. */
const referenceMatch = (pattern: ReadonlyArray<string>, subject: ReadonlyArray<string>): boolean => {
  if (pattern.length === 0) return subject.length === 0
  const [head, ...rest] = pattern
  if (head === ">") return subject.length >= 1
  if (subject.length === 0) return false
  return (head === "*" || head === subject[0]) && referenceMatch(rest, subject.slice(1))
}

const token = Arbitrary.schema(Schema.Literals(["a", "b", "ab", "c*", "d>"]))
const tokens = Arbitrary.array(token, { minLength: 1, maxLength: 5 })
const patternToken = Arbitrary.schema(Schema.Literals(["a", "b", "ab", "*", "c*"]))
const randomPattern = Arbitrary.all([
  Arbitrary.array(patternToken, { minLength: 1, maxLength: 5 }),
  Arbitrary.schema(Schema.Boolean)
]).pipe(Arbitrary.map(([ts, gt]) => gt ? [...ts.slice(0, -1), ">"] : ts))

/** A subject and a pattern derived from it: some tokens `*`, maybe truncated with `>`. */
const subjectAndDerivedPattern = Arbitrary.flatMap(tokens, (subjectTokens) =>
  Arbitrary.all([
    Arbitrary.Constant(subjectTokens),
    Arbitrary.array(Arbitrary.schema(Schema.Boolean), {
      minLength: subjectTokens.length,
      maxLength: subjectTokens.length
    }),
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: subjectTokens.length })))
  ]))

describe("matches", () => {
  it("exact semantics", () => {
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      ["a.b", "a.b", true],
      ["a.b", "a.c", false],
      ["a.b", "a", false],
      ["a", "a.b", false],
      ["a.*", "a.b", true],
      ["a.*", "a", false],
      ["a.*", "a.b.c", false],
      ["*", "a", true],
      ["*", "a.b", false],
      ["*.b", "a.b", true],
      ["a.>", "a.b", true],
      ["a.>", "a.b.c", true],
      ["a.>", "a", false],
      [">", "a", true],
      [">", "a.b.c", true],
      ["*.>", "a", false],
      ["*.>", "a.b", true],
      ["foo*", "foo*", true],
      ["foo*", "fooX", false],
      ["a>b", "aXb", false],
      ["ab.c", "a.bc", false],
      ["a.b.c", "a.b.cd", false],
      ["a.bc", "a.b", false]
    ]
    for (const [pattern, subject, expected] of cases) {
      assert.strictEqual(Subject.matches(pattern, subject), expected, `${pattern} ~ ${subject}`)
      assert.strictEqual(
        referenceMatch(pattern.split("."), subject.split(".")),
        expected,
        `ref ${pattern} ~ ${subject}`
      )
    }
  })

  it("data-last", () => {
    assert.isTrue(pipe("a.*", Subject.matches("a.b")))
    assert.isFalse(pipe("a.*", Subject.matches("b.b")))
  })

  it.prop("a pattern derived from a subject matches it", [subjectAndDerivedPattern], ([[ts, stars, cut]]) => {
    const patternTokens = ts.map((t, i) => stars[i] === true ? "*" : t)
    const pattern = cut < ts.length ? [...patternTokens.slice(0, cut), ">"] : patternTokens
    const p = pattern.join(".")
    const s = ts.join(".")
    assert.isTrue(Subject.isPattern(p), p)
    assert.isTrue(Subject.isSubject(s), s)
    assert.isTrue(Subject.matches(p, s), `${p} ~ ${s}`)
  }, { arbitrary: { runs: 500 } })

  it.prop("agrees with a recursive reference on random patterns", [randomPattern, tokens], ([p, s]) => {
    assert.strictEqual(
      Subject.matches(p.join("."), s.join(".")),
      referenceMatch(p, s),
      `${p.join(".")} ~ ${s.join(".")}`
    )
  }, { arbitrary: { runs: 1000 } })

  it.prop(
    "Subject / SubjectPattern schema arbitraries produce valid values",
    [Subject.Subject, Subject.SubjectPattern],
    ([s, p]) => {
      assert.isTrue(Subject.isSubject(s))
      assert.isTrue(Subject.isPattern(p))
      assert.isTrue(Subject.matches(s, s))
    }
  )
})

describe("template", () => {
  const OrderCreated = Subject.template("orders.{orderId}.created")
  const Event = Subject.template("{tenant}.orders.{orderId}.{event}")

  it("make / parse / pattern", () => {
    assert.strictEqual(OrderCreated.template, "orders.{orderId}.created")
    assert.strictEqual(OrderCreated.pattern, "orders.*.created")
    assert.deepStrictEqual(OrderCreated.params, ["orderId"])
    assert.deepStrictEqual(
      OrderCreated.makeResult({ orderId: "42" }),
      Result.succeed("orders.42.created" as Subject.Subject)
    )
    assert.deepStrictEqual(OrderCreated.parse("orders.42.created"), Option.some({ orderId: "42" }))
    assert.strictEqual(Event.pattern, "*.orders.*.*")
    assert.deepStrictEqual(
      Event.makeResult({ tenant: "t1", orderId: "o", event: "shipped" }),
      Result.succeed("t1.orders.o.shipped" as Subject.Subject)
    )
    assert.deepStrictEqual(
      Event.parse("t1.orders.o.shipped"),
      Option.some({ tenant: "t1", orderId: "o", event: "shipped" })
    )
    const NoParams = Subject.template("a.b")
    assert.strictEqual(NoParams.pattern, "a.b")
    assert.deepStrictEqual(NoParams.makeResult({}), Result.succeed("a.b" as Subject.Subject))
    assert.deepStrictEqual(NoParams.parse("a.b"), Option.some({}))
  })

  it("parse returns None for subjects that do not fit", () => {
    for (
      const s of [
        "orders.42",
        "orders.42.created.x",
        "orders.42.updated",
        "order.42.created",
        "orders..created",
        "orders.*.created",
        "orders",
        "",
        "orders.42.created."
      ]
    ) {
      assert.isTrue(Option.isNone(OrderCreated.parse(s)), s)
    }
  })

  it("make fails with InvalidSubject for invalid parameters", () => {
    for (const orderId of ["", "a.b", "*", ">", "a b", "a\tb"]) {
      const result = OrderCreated.makeResult({ orderId })
      assert.isTrue(Result.isFailure(result), JSON.stringify(orderId))
      if (Result.isFailure(result)) {
        assert.strictEqual(result.failure.reason._tag, "InvalidSubject")
        assert.include(result.failure.message, "{orderId}")
      }
    }
  })

  it.effect("make is an Effect", () =>
    Effect.gen(function*() {
      const s = yield* OrderCreated.make({ orderId: "7" })
      assert.strictEqual(s, "orders.7.created")
      const error = yield* Effect.flip(OrderCreated.make({ orderId: "a.b" }))
      assert.strictEqual(error.reason._tag, "InvalidSubject")
    }))

  it("rejects invalid templates by throwing a NatsError", () => {
    for (
      const t of [
        "orders.x{id}",
        "orders.{id}x",
        "{a}{b}",
        "a.{id}.{id}",
        "a..{id}",
        "a.*.{id}",
        "a.>",
        "",
        "a.{}",
        "a.{1x}",
        "a.{id"
      ]
    ) {
      assert.throws(() => Subject.template(t), /Invalid subject template/, t)
      try {
        Subject.template(t)
      } catch (e) {
        assert.isTrue(isNatsError(e))
      }
    }
  })

  it("infers parameter names at the type level", () => {
    // @ts-expect-error orderId is missing
    const missing = OrderCreated.makeResult({})
    assert.isTrue(Result.isFailure(missing))
    // @ts-expect-error event is not a parameter of this template
    OrderCreated.makeResult({ orderId: "1", event: "x" })
    const parsed = Event.parse("t.orders.o.e")
    if (Option.isSome(parsed)) {
      const tenant: string = parsed.value.tenant
      assert.strictEqual(tenant, "t")
    }
  })

  // Arbitrary strings turned into valid tokens: every code point that may not
  // appear in a token becomes "_", and "", "*", ">" get a suffix.
  const param = Arbitrary.schema(Schema.String).pipe(Arbitrary.map((s: string) => {
    const t = Array.from(s, (ch) => ch === "." || Subject.validateToken(`a${ch}`) !== undefined ? "_" : ch).join("")
    return t === "" || t === "*" || t === ">" ? `${t}x` : t
  }))

  it.prop("parse(make(p)) === p and pattern matches make(p)", [param, param, param], ([tenant, orderId, event]) => {
    const p = { tenant, orderId, event }
    const made = Event.makeResult(p)
    assert.isTrue(Result.isSuccess(made))
    if (Result.isSuccess(made)) {
      assert.isTrue(Subject.isSubject(made.success), made.success)
      assert.deepStrictEqual(Event.parse(made.success), Option.some(p))
      assert.isTrue(Subject.matches(Event.pattern, made.success))
    }
  }, { arbitrary: { runs: 300 } })
})
