#!/usr/bin/env bash
# Installs the packed package (npm pack) into a fresh project the way a user
# does, with effect from the registry, and checks: one @nats-io/nats-core in
# the whole install, the package and a subpath load, the tarball holds no
# tests. Run after `npm run build`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
node="$root/node_modules/.bin/node"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$root"
tgz="$(npm pack --silent --pack-destination "$tmp")"
if tar -tzf "$tmp/$tgz" | grep -q "^package/test/"; then echo "check-install: the tarball holds tests" >&2; exit 1; fi
effect="$("$node" -p 'require("./package.json").devDependencies.effect')"

cd "$tmp"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "./$tgz" "effect@$effect" >/dev/null
versions="$("$node" -e '
  const seen = new Set()
  const walk = (deps) => { for (const [name, d] of Object.entries(deps ?? {})) { if (name === "@nats-io/nats-core") seen.add(d.version); walk(d.dependencies) } }
  walk(JSON.parse(require("node:child_process").execSync("npm ls --all --json", { encoding: "utf8" })).dependencies)
  console.log([...seen].join(" "))
')"
if [ "$(wc -w <<<"$versions")" -ne 1 ]; then echo "check-install: @nats-io/nats-core versions: $versions" >&2; exit 1; fi
cat > check.mjs <<'JS'
const root = await import("effect-nats")
const client = await import("effect-nats/NatsClient")
if (typeof root.NatsClient.make !== "function" || client.NatsClient !== root.NatsClient.NatsClient) process.exit(1)
JS
"$node" check.mjs
echo "install: $tgz installs with one @nats-io/nats-core ($versions) and loads"
