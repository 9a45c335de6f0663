/**
 * TEMPORARY stand-in until the Subject module lands.
 *
 * @since 0.1.0
 */
const bad = /[\s\u0000-\u001f]/

/** @since 0.1.0 */
export const validateSubject = (s: string): string | undefined => {
  if (s.length === 0) return "empty"
  if (bad.test(s)) return "whitespace"
  for (const t of s.split(".")) {
    if (t.length === 0) return "empty token"
    if (t === "*" || t === ">") return "wildcard"
  }
  return undefined
}

/** @since 0.1.0 */
export const validatePattern = (s: string): string | undefined => {
  if (s.length === 0) return "empty"
  if (bad.test(s)) return "whitespace"
  const ts = s.split(".")
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]
    if (t === undefined || t.length === 0) return "empty token"
    if (t === ">" && i !== ts.length - 1) return "> not last"
  }
  return undefined
}

/** @since 0.1.0 */
export const validateQueue = (s: string): string | undefined => s.length === 0 || bad.test(s) ? "bad" : undefined
