#!/usr/bin/env bash
# Make sure a nats-server binary is available for tests, examples and benchmarks.
# Found (NATS_SERVER_BIN, PATH, /usr/sbin/nats-server): exit 0 quietly.
# Otherwise install it with apt-get when running as root, or print a hint and exit 1.
set -euo pipefail

found() {
  if [[ -n "${NATS_SERVER_BIN:-}" && -x "${NATS_SERVER_BIN}" ]]; then return 0; fi
  if command -v nats-server >/dev/null 2>&1; then return 0; fi
  if [[ -x /usr/sbin/nats-server ]]; then return 0; fi
  return 1
}

if found; then
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nats-server >/dev/null
  if found; then
    echo "ensure-nats-server: installed nats-server with apt-get ($(nats-server --version 2>/dev/null || /usr/sbin/nats-server --version))"
    exit 0
  fi
  echo "ensure-nats-server: apt-get install nats-server did not provide a nats-server binary" >&2
  exit 1
fi

echo "ensure-nats-server: nats-server not found; install it (as root: apt-get install nats-server) or set NATS_SERVER_BIN to its path" >&2
exit 1
