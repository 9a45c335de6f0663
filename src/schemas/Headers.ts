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

/**
 * nats.js headers from a `HeadersInit` (`MsgHdrs` are returned as they are).
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
