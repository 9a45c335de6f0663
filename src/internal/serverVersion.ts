/**
 * What a server can do, from the version it reports.
 *
 * @internal
 */

/**
 * Whether a server of this version accepts a reason with `term` (2.11+).
 * nats-server 2.9 / 2.10 ignore a `+TERM` that carries a reason, and the
 * message is redelivered.
 */
export const supportsTermReason = (serverVersion: string | undefined): boolean => {
  if (serverVersion === undefined) return false
  const [major, minor] = serverVersion.split(".").map((part) => Number.parseInt(part, 10))
  if (major === undefined || minor === undefined || Number.isNaN(major) || Number.isNaN(minor)) return false
  return major > 2 || (major === 2 && minor >= 11)
}
