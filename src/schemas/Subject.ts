/**
 * NATS subjects: validation, schemas, wildcard matching and typed templates.
 *
 * A subject is a non-empty list of tokens separated by `.`. Tokens are never
 * empty (no leading, trailing or double dots) and no character of a subject
 * may be whitespace or a control character. In a subscription pattern, a token
 * that is exactly `*` matches exactly one token and a token that is exactly
 * `>` matches one or more tokens and may only be the last token. Tokens that
 * merely contain `*` or `>` (`foo*`, `a>b`) are literal tokens, exactly as
 * nats-server treats them.
 *
 * Validation is stricter than nats-server (which only rejects space, tab, CR,
 * LF and FF): every C0/C1 control character, DEL, Unicode whitespace and
 * unpaired UTF-16 surrogates are rejected too, so that every subject accepted
 * here reaches the server byte for byte and is routed as described above.
 *
 * The validating functions are plain, allocation free, single pass loops: the
 * client calls one of them per publish.
 *
 * @since 0.1.0
 */
import type { Brand } from "effect"
import { Effect, Function, Option, Result, Schema } from "effect"
import { natsError } from "../internal/errors.ts"
import type { NatsError } from "./NatsError.ts"
import { InvalidSubject } from "./NatsError.ts"

const DOT = 46 // "."
const STAR = 42 // "*"
const GT = 62 // ">"

/**
 * Whether a UTF-16 code unit outside printable ASCII is whitespace or a
 * control character (C1 controls, NBSP and the Unicode space separators).
 */
const isNonAsciiSpaceOrControl = (c: number): boolean =>
  (c >= 0x7f && c <= 0xa0) ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000 ||
  c === 0xfeff

const describeChar = (c: number): string =>
  c === 0x20
    ? "a space"
    : c === 0x09
    ? "a tab"
    : c === 0x0a
    ? "a line feed"
    : c === 0x0d
    ? "a carriage return"
    : `the character U+${c.toString(16).toUpperCase().padStart(4, "0")}`

const quote = (s: string): string => JSON.stringify(s)

/**
 * Scans `s` from `start` to `end` (exclusive) for a character that may not
 * appear in a subject. Returns the index of the first bad character or -1.
 * Dots are not checked here.
 */
const badCharIndex = (s: string, start: number, end: number): number => {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x20 && c < 0x7f) continue
    if (c <= 0x20 || isNonAsciiSpaceOrControl(c)) return i
    if (c >= 0xd800 && c <= 0xdfff) {
      // A high surrogate must be followed by a low surrogate.
      if (c >= 0xdc00 || i + 1 >= end) return i
      const next = s.charCodeAt(i + 1)
      if (next < 0xdc00 || next > 0xdfff) return i
      i++
    }
  }
  return -1
}

const badCharMessage = (kind: string, s: string, i: number): string => {
  const c = s.charCodeAt(i)
  const prefix = `Invalid ${kind} ${quote(s)}`
  return c >= 0xd800 && c <= 0xdfff
    ? `${prefix}: contains an unpaired UTF-16 surrogate at index ${i}`
    : `${prefix}: contains ${describeChar(c)} at index ${i} (whitespace and control characters are not allowed)`
}

/**
 * One pass validation shared by subjects and patterns. Returns `undefined`
 * when valid, otherwise a human readable reason.
 */
const validate = (s: string, wildcards: boolean): string | undefined => {
  const kind = wildcards ? "subject pattern" : "subject"
  // from plain JavaScript anything can come
  if (typeof s !== "string") return `Invalid ${kind}: must be a string, got ${typeof s}`
  const len = s.length
  if (len === 0) return `Invalid ${kind}: must not be empty`
  let start = 0
  for (let i = 0; i <= len; i++) {
    const c = i === len ? DOT : s.charCodeAt(i)
    if (c === DOT) {
      const tokenLength = i - start
      if (tokenLength === 0) {
        const where = start === 0 ? "leading '.'" : i === len ? "trailing '.'" : "'..'"
        return `Invalid ${kind} ${quote(s)}: empty token (${where} at index ${i === len ? i - 1 : i})`
      }
      if (tokenLength === 1) {
        const t = s.charCodeAt(start)
        if (t === STAR || t === GT) {
          if (!wildcards) {
            return `Invalid subject ${quote(s)}: wildcard token '${
              t === STAR ? "*" : ">"
            }' is not allowed in a publish subject`
          }
          if (t === GT && i !== len) {
            return `Invalid subject pattern ${quote(s)}: '>' must be the last token`
          }
        }
      }
      start = i + 1
    } else if (c <= 0x20 || c >= 0x7f) {
      if (c <= 0x20 || isNonAsciiSpaceOrControl(c)) return badCharMessage(kind, s, i)
      if (c >= 0xd800 && c <= 0xdfff) {
        // A high surrogate must be followed by a low surrogate.
        const next = c < 0xdc00 && i + 1 < len ? s.charCodeAt(i + 1) : 0
        if (next < 0xdc00 || next > 0xdfff) return badCharMessage(kind, s, i)
        i++
      }
    }
  }
  return undefined
}

/**
 * Checks a publish subject: returns `undefined` when it is valid, otherwise a
 * human readable reason. Wildcard tokens (`*`, `>`) are rejected.
 *
 * This is the cheapest check (no allocation on success); use it on hot paths.
 *
 * @category validation
 * @since 0.1.0
 */
export const validateSubject = (subject: string): string | undefined => validate(subject, false)

/**
 * Checks a subscription subject (pattern): returns `undefined` when it is
 * valid, otherwise a human readable reason. `*` tokens are allowed anywhere,
 * a `>` token only last.
 *
 * @category validation
 * @since 0.1.0
 */
export const validatePattern = (pattern: string): string | undefined => validate(pattern, true)

/**
 * Checks a single token that is substituted into a subject (a template
 * parameter): returns `undefined` when valid, otherwise a reason. A token is
 * non-empty, has no `.`, no whitespace or control characters and is not a
 * wildcard (`*` or `>`).
 *
 * @category validation
 * @since 0.1.0
 */
export const validateToken = (token: string): string | undefined => {
  if (typeof token !== "string") return `Invalid subject token: must be a string, got ${typeof token}`
  const len = token.length
  if (len === 0) return "Invalid subject token: must not be empty"
  if (len === 1) {
    const c = token.charCodeAt(0)
    if (c === STAR || c === GT) return `Invalid subject token ${quote(token)}: wildcards are not allowed`
  }
  for (let i = 0; i < len; i++) {
    if (token.charCodeAt(i) === DOT) {
      return `Invalid subject token ${quote(token)}: must not contain '.' (index ${i})`
    }
  }
  const bad = badCharIndex(token, 0, len)
  return bad === -1 ? undefined : badCharMessage("subject token", token, bad)
}

/**
 * A valid NATS publish subject (no wildcard tokens). Every `Subject` is also a
 * `SubjectPattern` (one that matches only itself).
 *
 * @category models
 * @since 0.1.0
 */
export type Subject = string & Brand.Brand<"effect-nats/Subject"> & Brand.Brand<"effect-nats/SubjectPattern">

/**
 * A valid NATS subscription subject: `*` tokens anywhere, a `>` token only
 * last.
 *
 * @category models
 * @since 0.1.0
 */
export type SubjectPattern = string & Brand.Brand<"effect-nats/SubjectPattern">

/**
 * Returns `true` when the value is a string and a valid publish subject.
 *
 * @category guards
 * @since 0.1.0
 */
export const isSubject = (u: unknown): u is Subject => typeof u === "string" && validate(u, false) === undefined

/**
 * Returns `true` when the value is a string and a valid subscription subject
 * (pattern).
 *
 * @category guards
 * @since 0.1.0
 */
export const isPattern = (u: unknown): u is SubjectPattern => typeof u === "string" && validate(u, true) === undefined

/**
 * Returns `true` when a (valid) pattern contains a wildcard token.
 *
 * @category guards
 * @since 0.1.0
 */
export const hasWildcard = (pattern: string): boolean => {
  const len = pattern.length
  let start = 0
  for (let i = 0; i <= len; i++) {
    if (i === len || pattern.charCodeAt(i) === DOT) {
      if (i - start === 1) {
        const c = pattern.charCodeAt(start)
        if (c === STAR || c === GT) return true
      }
      start = i + 1
    }
  }
  return false
}

const ALNUM = "[A-Za-z0-9_-]+"

/**
 * Schema of a valid NATS publish subject (branded). Decoding fails with a
 * message naming the problem (empty token, whitespace, wildcard, ...).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Subject = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => validate(s, false), {
    expected: "a NATS subject (non-empty '.'-separated tokens, no whitespace, no wildcards)",
    arbitraryConstraint: { patterns: [{ source: `^${ALNUM}(\\.${ALNUM}){0,5}$`, flags: "" }] }
  })),
  Schema.brand("effect-nats/SubjectPattern"),
  Schema.brand("effect-nats/Subject")
).annotate({ identifier: "Subject" })

/**
 * Schema of a valid NATS subscription subject (branded): `*` tokens anywhere,
 * `>` only as the last token.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SubjectPattern = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => validate(s, true), {
    expected: "a NATS subject pattern (non-empty '.'-separated tokens, no whitespace, '>' only last)",
    arbitraryConstraint: {
      patterns: [{ source: `^(${ALNUM}|\\*)(\\.(${ALNUM}|\\*)){0,5}(\\.>)?$`, flags: "" }]
    }
  })),
  Schema.brand("effect-nats/SubjectPattern")
).annotate({ identifier: "SubjectPattern" })

/**
 * Builds the `NatsError` (reason `InvalidSubject`) used for every invalid
 * subject, pattern or template.
 *
 * @category errors
 * @since 0.1.0
 */
export const invalidSubjectError = (subject: string, message: string): NatsError =>
  natsError(new InvalidSubject({ subject, message }))

/**
 * Validates a publish subject synchronously.
 *
 * @category constructors
 * @since 0.1.0
 */
export const subjectResult = (subject: string): Result.Result<Subject, NatsError> => {
  const message = validate(subject, false)
  return message === undefined
    ? Result.succeed(subject as Subject)
    : Result.fail(invalidSubjectError(subject, message))
}

/**
 * Validates a subscription subject (pattern) synchronously.
 *
 * @category constructors
 * @since 0.1.0
 */
export const patternResult = (pattern: string): Result.Result<SubjectPattern, NatsError> => {
  const message = validate(pattern, true)
  return message === undefined
    ? Result.succeed(pattern as SubjectPattern)
    : Result.fail(invalidSubjectError(pattern, message))
}

/**
 * Validates a publish subject, failing with `NatsError` (reason
 * `InvalidSubject`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const subject = (subject: string): Effect.Effect<Subject, NatsError> => {
  const message = validate(subject, false)
  return message === undefined
    ? Effect.succeed(subject as Subject)
    : Effect.fail(invalidSubjectError(subject, message))
}

/**
 * Validates a subscription subject (pattern), failing with `NatsError`
 * (reason `InvalidSubject`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const pattern = (pattern: string): Effect.Effect<SubjectPattern, NatsError> => {
  const message = validate(pattern, true)
  return message === undefined
    ? Effect.succeed(pattern as SubjectPattern)
    : Effect.fail(invalidSubjectError(pattern, message))
}

const matchImpl = (pattern: string, subject: string): boolean => {
  // Fast path: a valid subject matches itself.
  if (pattern === subject) return true
  const pl = pattern.length
  const sl = subject.length
  let pi = 0
  let si = 0
  for (;;) {
    let pe = pattern.indexOf(".", pi)
    if (pe === -1) pe = pl
    let se = subject.indexOf(".", si)
    if (se === -1) se = sl
    const tokenLength = pe - pi
    if (tokenLength === 1) {
      const c = pattern.charCodeAt(pi)
      // `>` matches the (non-empty) rest of the subject.
      if (c === GT) return true
      if (c !== STAR && (se - si !== 1 || subject.charCodeAt(si) !== c)) return false
    } else {
      if (se - si !== tokenLength) return false
      for (let k = 0; k < tokenLength; k++) {
        if (pattern.charCodeAt(pi + k) !== subject.charCodeAt(si + k)) return false
      }
    }
    const patternDone = pe === pl
    const subjectDone = se === sl
    if (patternDone || subjectDone) return patternDone && subjectDone
    pi = pe + 1
    si = se + 1
  }
}

/**
 * Whether a subscription pattern matches a publish subject, with the exact
 * semantics of nats-server: a `*` token matches exactly one token, a final
 * `>` token matches one or more tokens (never zero), every other token must
 * be equal. Both arguments are expected to be valid (see `validatePattern`
 * and `validateSubject`); the result for invalid input is unspecified.
 *
 * Allocation free. Data-first `matches(pattern, subject)` or data-last
 * `pipe(pattern, matches(subject))`.
 *
 * @category matching
 * @since 0.1.0
 */
export const matches: {
  (subject: string): (pattern: string) => boolean
  (pattern: string, subject: string): boolean
} = Function.dual(2, matchImpl)

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

/**
 * The parameter names of a subject template string, e.g.
 * `"orders.{orderId}.{event}"` gives `"orderId" | "event"`.
 *
 * @category templates
 * @since 0.1.0
 */
export type TemplateParamNames<T extends string> = T extends `${string}{${infer P}}${infer Rest}` ?
  P | TemplateParamNames<Rest>
  : never

/**
 * The parameters object of a subject template string, e.g.
 * `"orders.{orderId}.created"` gives `{ readonly orderId: string }`.
 *
 * @category templates
 * @since 0.1.0
 */
export type TemplateParams<T extends string> = { readonly [K in TemplateParamNames<T>]: string }

/**
 * A typed subject template such as `orders.{orderId}.created`: builds
 * subjects from parameters, parses subjects back into parameters, and gives
 * the subscription pattern matching every subject it can build.
 *
 * @category templates
 * @since 0.1.0
 */
export interface SubjectTemplate<P extends Record<string, string>> {
  /** The template string, e.g. `orders.{orderId}.created`. */
  readonly template: string
  /** The parameter names, in order of appearance. */
  readonly params: ReadonlyArray<keyof P & string>
  /** The subscription pattern: every parameter replaced by `*`, e.g. `orders.*.created`. */
  readonly pattern: SubjectPattern
  /**
   * Builds the subject. Each parameter must be one valid token (non-empty, no
   * `.`, no whitespace or control characters, not a wildcard); otherwise fails
   * with `NatsError` (reason `InvalidSubject`).
   */
  readonly make: (params: P) => Effect.Effect<Subject, NatsError>
  /** Like `make`, synchronously. */
  readonly makeResult: (params: P) => Result.Result<Subject, NatsError>
  /**
   * Parses a subject built by this template back into its parameters; `None`
   * when the subject does not fit (other literal tokens, other token count, or
   * a parameter token that `make` would reject).
   */
  readonly parse: (subject: string) => Option.Option<P>
}

const PARAM_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/**
 * Compiles a typed subject template. Parameters are written `{name}` and must
 * occupy a whole token (`orders.{id}.created`); names are identifiers
 * (`[A-Za-z_$][A-Za-z0-9_$]*`, not `__proto__`) and must be unique. Other tokens are literal
 * tokens of a publish subject (no wildcards).
 *
 * Templates are meant to be module-level constants, so an invalid template is
 * a programming error: `template` **throws** a `NatsError` (reason
 * `InvalidSubject`) describing the problem, e.g. for `orders.x{id}`.
 *
 * @example
 * ```ts
 * const OrderCreated = template("orders.{orderId}.created")
 * OrderCreated.pattern // "orders.*.created"
 * OrderCreated.makeResult({ orderId: "42" }) // Result.succeed("orders.42.created")
 * OrderCreated.make({ orderId: "42" }) // Effect.succeed("orders.42.created")
 * OrderCreated.parse("orders.42.created") // Option.some({ orderId: "42" })
 * ```
 *
 * @category templates
 * @since 0.1.0
 */
export const template = <const T extends string>(template: T): SubjectTemplate<TemplateParams<T>> => {
  type P = TemplateParams<T>
  const fail = (message: string): never => {
    throw invalidSubjectError(template, `Invalid subject template ${quote(template)}: ${message}`)
  }
  if (template.length === 0) fail("must not be empty")
  const tokens = template.split(".")
  // For each token: the parameter name, or undefined for a literal token.
  const names: Array<string | undefined> = []
  const params: Array<string> = []
  for (const token of tokens) {
    if (token.length > 1 && token.charCodeAt(0) === 123 && token.charCodeAt(token.length - 1) === 125) {
      const name = token.slice(1, -1)
      if (!PARAM_NAME.test(name) || name === "__proto__") {
        fail(`parameter name ${quote(name)} is not an identifier`)
      }
      if (params.includes(name)) fail(`duplicate parameter {${name}}`)
      params.push(name)
      names.push(name)
    } else {
      if (token.includes("{") || token.includes("}")) {
        fail(`a parameter must occupy a whole token (got ${quote(token)})`)
      }
      names.push(undefined)
    }
  }
  // Literal tokens must not be wildcards.
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]
    if (names[i] === undefined && (t === "*" || t === ">")) fail(`wildcard token '${t}' is not allowed`)
  }
  const patternString = tokens.map((t, i) => names[i] === undefined ? t : "*").join(".")
  const patternMessage = validate(patternString, true)
  if (patternMessage !== undefined) fail(patternMessage)

  const count = tokens.length
  // Literal text between parameters, precomputed for `make`.
  const literals: Array<string> = []
  const paramOrder: Array<string> = []
  let acc = ""
  for (let i = 0; i < count; i++) {
    const name = names[i]
    const sep = i === 0 ? "" : "."
    if (name === undefined) {
      acc += sep + tokens[i]
    } else {
      literals.push(acc + sep)
      paramOrder.push(name)
      acc = ""
    }
  }
  const tail = acc

  const makeResult = (input: P): Result.Result<Subject, NatsError> => {
    const record = input as Readonly<Record<string, string>>
    let out = ""
    for (let i = 0; i < paramOrder.length; i++) {
      const name = paramOrder[i] as string
      const value = record[name]
      if (typeof value !== "string") {
        return Result.fail(invalidSubjectError(template, `Missing parameter {${name}} for template ${quote(template)}`))
      }
      const message = validateToken(value)
      if (message !== undefined) {
        return Result.fail(
          invalidSubjectError(template, `Invalid parameter {${name}} for template ${quote(template)}: ${message}`)
        )
      }
      out += literals[i] + value
    }
    return Result.succeed((out + tail) as Subject)
  }

  const parse = (subject: string): Option.Option<P> => {
    const record: Record<string, string> = {}
    const sl = subject.length
    let si = 0
    for (let i = 0; i < count; i++) {
      if (si > sl) return Option.none()
      let se = subject.indexOf(".", si)
      if (se === -1) se = sl
      const name = names[i]
      if (name === undefined) {
        const literal = tokens[i] as string
        if (se - si !== literal.length || !subject.startsWith(literal, si)) return Option.none()
      } else {
        const value = subject.slice(si, se)
        if (validateToken(value) !== undefined) return Option.none()
        record[name] = value
      }
      si = se + 1
    }
    return si === sl + 1 ? Option.some(record as P) : Option.none()
  }

  return {
    template,
    params: params as ReadonlyArray<string> as unknown as ReadonlyArray<keyof P & string>,
    pattern: patternString as SubjectPattern,
    make: (input) => Effect.fromResult(makeResult(input)),
    makeResult,
    parse
  }
}
