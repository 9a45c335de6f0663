/**
 * Message headers: what a caller may give (`HeadersInit`), the conversion to
 * nats.js headers, and the headers by which a responder reports a failure
 * (the convention of NATS services).
 *
 * @since 0.1.0
 */
import type { MsgHdrs } from "@nats-io/nats-core"
import { headers as makeHeaders } from "@nats-io/nats-core"

/**
 * Headers for a message: nats.js `MsgHdrs`, or a plain record whose values
 * are one string or several.
 *
 * @example
 * ```ts
 * const headers: Headers.HeadersInit = { "x-tenant": "acme", "x-tags": ["a", "b"] }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export type HeadersInit = MsgHdrs | Readonly<Record<string, string | ReadonlyArray<string>>>

/**
 * Header carrying a handler's failure message back to the caller (the
 * convention of NATS services).
 *
 * @category constants
 * @since 0.1.0
 */
export const ServiceErrorHeader = "Nats-Service-Error"

/**
 * Header carrying a handler's failure code back to the caller.
 *
 * @category constants
 * @since 0.1.0
 */
export const ServiceErrorCodeHeader = "Nats-Service-Error-Code"

/**
 * Whether the headers are nats.js `MsgHdrs` already.
 *
 * @category guards
 * @since 0.1.0
 */
export const isMsgHdrs = (init: HeadersInit): init is MsgHdrs =>
  typeof (init as { readonly encode?: unknown }).encode === "function"

const nameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "a header name must not be empty"
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c === 58 || c < 33 || c > 126) {
      return `the header name ${JSON.stringify(name)} has ${
        c === 58 ? "':'" : `the character U+${c.toString(16).toUpperCase().padStart(4, "0")}`
      } at index ${i} (printable ASCII without ':' only)`
    }
  }
  return undefined
}

const valueProblem = (name: string, value: unknown): string | undefined => {
  if (typeof value !== "string") return `the value of header ${name} is not a string`
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 13 || c === 10) return `the value of header ${name} contains a line break at index ${i}`
  }
  return undefined
}

/**
 * What is wrong with headers, if anything: a name must be printable ASCII
 * without ':' (and not empty), a value a string without CR or LF (they
 * would end the header block). nats.js `MsgHdrs` are checked too (they let
 * an empty name through).
 *
 * @category validation
 * @since 0.1.0
 */
export const validate = (init: HeadersInit): string | undefined => {
  if (typeof init !== "object" || init === null) return "headers must be an object"
  const entries: Iterable<readonly [string, unknown]> = isMsgHdrs(init)
    ? init
    : Object.entries(init).flatMap(([name, value]) =>
      typeof value === "string" ? [[name, [value]] as const] : [[name, value] as const]
    )
  for (const [name, values] of entries) {
    const problem = nameProblem(name)
    if (problem !== undefined) return problem
    if (!Array.isArray(values)) return `the value of header ${name} is not a string or an array of strings`
    for (const value of values) {
      const bad = valueProblem(name, value)
      if (bad !== undefined) return bad
    }
  }
  return undefined
}

/**
 * nats.js headers from a `HeadersInit` (`MsgHdrs` are returned as they are).
 * It throws nats.js' `InvalidArgumentError` on an invalid name or value:
 * check with `validate` first (the client does, before anything is sent).
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromInit = (init: HeadersInit): MsgHdrs => {
  if (isMsgHdrs(init)) return init
  const h = makeHeaders()
  for (const key of Object.keys(init)) {
    const value = init[key]
    if (typeof value === "string") h.set(key, value)
    else if (value !== undefined) { for (const v of value) h.append(key, v) }
  }
  return h
}

/**
 * The headers of a reply reporting a failure the NATS services way:
 * `Nats-Service-Error` (the error's message on one line) and
 * `Nats-Service-Error-Code`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const serviceError = (code: number, error: unknown): MsgHdrs => {
  const h = makeHeaders()
  const text = error instanceof Error ? error.message : String(error)
  h.set(ServiceErrorHeader, text.replace(/[\r\n]+/g, " ").trim() || "error")
  h.set(ServiceErrorCodeHeader, String(code))
  return h
}

/**
 * The service failure that reply headers report, if any: its code (500 when
 * the code header is missing or not a number) and message.
 *
 * @category accessors
 * @since 0.1.0
 */
export const serviceErrorOf = (
  headers: MsgHdrs | undefined
): { readonly code: number; readonly message: string } | undefined => {
  if (headers === undefined) return undefined
  const code = headers.get(ServiceErrorCodeHeader)
  const message = headers.get(ServiceErrorHeader)
  if (code === "" && message === "") return undefined
  return { code: Number(code) || 500, message: message || "no message" }
}
