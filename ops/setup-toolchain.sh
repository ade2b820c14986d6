#!/usr/bin/env bash
# Build tools: the wasm target, wasm-bindgen-cli matching the pinned wasm-bindgen, and the npm
# packages (Tailwind CSS, Playwright). Safe to re-run; does nothing when all is there.
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
if [ ! -x node_modules/.bin/tailwindcss ] || [ package.json -nt node_modules/.stamp ]; then
  echo "setup-toolchain: installing npm packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  touch node_modules/.stamp
fi
echo "setup-toolchain: ok"
