#!/usr/bin/env bash
# Validates the OpenAPI document the server generates (openapi-spec-validator from PyPI).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${VMW_BIN:-$root/target/debug/vm-webhoster}
python3 -c 'import openapi_spec_validator' 2>/dev/null || pip install -q openapi-spec-validator 2>/dev/null
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --no-libvirt --data-dir "$data" --listen "127.0.0.1:$port" --log-level warn &
pid=$!
trap 'kill $pid; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/api/v1/openapi.json" > "$data/openapi.json"
python3 - "$data/openapi.json" <<'PY'
import json, sys
from openapi_spec_validator import validate
doc = json.load(open(sys.argv[1]))
validate(doc)
ops = sum(len(v) for v in doc["paths"].values())
print(f"openapi: valid OpenAPI {doc['openapi']}, {len(doc['paths'])} paths, {ops} operations")
PY
