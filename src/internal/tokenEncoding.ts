/**
 * Any string as one NATS token (a subject token, a KV key, a consumer name),
 * reversibly: letters, digits, `-` and `_` stay as they are, every other
 * UTF-8 byte is written `=XX` (upper-case hex), the empty string is `=`.
 * The code is prefix-free per character, so `encode(p)` is a prefix of
 * `encode(s)` exactly when `p` is a prefix of `s`.
 *
 * Effect's own stores use keys NATS refuses (`:`, `%`, spaces, `.` at either
 * end...): the NATS-backed stores encode them with this.
 *
 * @internal
 */

const plain = /^[A-Za-z0-9_-]$/
const utf8 = new TextEncoder()
const text = new TextDecoder("utf-8", { fatal: true })
const hex = Array.from({ length: 256 }, (_, i) => `=${i.toString(16).toUpperCase().padStart(2, "0")}`)

/** The token for a string. */
export const encode = (s: string): string => {
  if (s === "") return "="
  let out = ""
  for (const ch of s) {
    if (plain.test(ch)) out += ch
    else for (const byte of utf8.encode(ch)) out += hex[byte]
  }
  return out
}

/** The string of a token made by `encode`; `undefined` when it is not one. */
export const decode = (token: string): string | undefined => {
  if (token === "=") return ""
  const bytes: Array<number> = []
  for (let i = 0; i < token.length; i++) {
    const ch = token.charAt(i)
    if (ch !== "=") {
      if (!plain.test(ch)) return undefined
      bytes.push(ch.charCodeAt(0))
      continue
    }
    const digits = token.slice(i + 1, i + 3)
    if (!/^[0-9A-F]{2}$/.test(digits)) return undefined
    bytes.push(Number.parseInt(digits, 16))
    i += 2
  }
  try {
    return text.decode(new Uint8Array(bytes))
  } catch {
    return undefined
  }
}
