#!/usr/bin/env bash
# Build tools: the wasm target, wasm-bindgen-cli matching the pinned wasm-bindgen, and the npm
# packages (Tailwind CSS, xterm.js, Playwright) and Debian's Chromium. Safe to re-run; does nothing when all
# is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup-toolchain: adding the wasm32 target"
  rustup target add wasm32-unknown-unknown
fi
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "setup-toolchain: installing wasm-bindgen-cli $want (about 2 minutes, once)"
  cargo install wasm-bindgen-cli --version "$want"
fi
# `npm install` (not `npm ci`): the registry reached here has no other platforms' optional
# packages (@tailwindcss/oxide-darwin-*), so no lock file can list them and `npm ci` refuses
# every lock as "out of sync". `npm install` installs exactly the locked versions.
if [ ! -x node_modules/.bin/tailwindcss ] || [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/@xterm/xterm ] \
   || [ package.json -nt node_modules/.stamp ] || [ package-lock.json -nt node_modules/.stamp ]; then
  echo "setup-toolchain: installing npm packages"
  npm install --no-audit --no-fund
  touch node_modules/.stamp
fi
# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
if [ ! -x /usr/bin/chromium ]; then
  echo "setup-toolchain: installing Debian's chromium"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
# The API contract test (ops/api-contract.sh): schemathesis from PyPI, pinned, in a venv of its
# own (Debian's python3 needs python3-venv for it).
SCHEMATHESIS=4.32.5
venv=${VMW_VENV:-/opt/vmw-venv}
if [ "$("$venv/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS" ]; then
  echo "setup-toolchain: installing schemathesis $SCHEMATHESIS into $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS"
fi
echo "setup-toolchain: ok"
