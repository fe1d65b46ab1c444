#!/usr/bin/env bash
# The side-by-side of issue 20: the same extraction by tandem and by the open-source Pipedrive
# extractors data teams use (the Singer tap `tap-pipedrive`, the Airbyte source
# `airbyte-source-pipedrive`, both from PyPI), on the same simulator (127.0.0.1 only) and the
# same size, with no rate limit. Prints records, seconds and records/s for each.
#
#   bench/extractors/run.sh [PERSONS] [DEALS] [ORGANIZATIONS] [ACTIVITIES] [NOTES]
#
# Needs the release `tandem` binary ($TANDEM_BIN, default $CARGO_TARGET_DIR/release/tandem) and
# python3. The extractors are installed into a venv under /tmp (VENVS=/tmp/extractors: /tmp/extractors-tap-pipedrive and /tmp/extractors-airbyte-source-pipedrive); they are
# run through loopback.py, which rewrites every request to the simulator and refuses any
# connection that is not to 127.0.0.1; loopback.py prints how many requests it sent to the simulator.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
persons="${1:-10000}"; deals="${2:-10000}"; orgs="${3:-5000}"; activities="${4:-20000}"; notes="${5:-5000}"
venvs="${VENVS:-/tmp/extractors}"   # one venv per extractor: their pins conflict (jsonschema 2 vs 4)
bin="${TANDEM_BIN:-${CARGO_TARGET_DIR:-target}/release/tandem}"
work="$(mktemp -d /tmp/tandem-extractors.XXXXXX)"
trap 'kill "${sim_pid:-}" 2>/dev/null || true' EXIT

for pkg in tap-pipedrive airbyte-source-pipedrive; do
  v="$venvs-$pkg"
  if [ ! -x "$v/bin/python" ]; then python3 -m venv "$v"; fi
  "$v/bin/pip" install -q "$pkg" || echo "pip install $pkg failed (see above)"
  "$v/bin/pip" show "$pkg" 2>/dev/null | grep -E '^(Name|Version)' || true
done

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" sim --port "$port" --persons "$persons" --deals "$deals" --organizations "$orgs" \
  --activities "$activities" --notes "$notes" --leads 500 --products 200 --seed 7 \
  >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 600); do grep -q "listening on" "$work/sim.log" 2>/dev/null && break; sleep 0.1; done
sim="http://127.0.0.1:$port"
token="sim-api-token"

measure() { # name, command...
  local name="$1"; shift
  local t0; t0="$(date +%s.%N)"
  "$@" >"$work/$name.out" 2>"$work/$name.err" || echo "$name exited with $? (see $work/$name.err)"
  local t1; t1="$(date +%s.%N)"
  local records; records="$(grep -c '"type": *"RECORD"' "$work/$name.out" || true)"
  printf '%-20s records %-9s seconds %-8.1f records/s %-9.0f %s\n' \
    "$name" "$records" "$(echo "$t1 - $t0" | bc)" "$(echo "$records / ($t1 - $t0)" | bc -l)" \
    "$(grep -h 'loopback.py:' "$work/$name.err" | tail -n 1)"
}

# tandem extract into a fresh SQLite database.
cat >"$work/tandem.toml" <<TOML
[database]
url = "sqlite://$work/tandem.db"
[security]
egress_allowed_hosts = ["127.0.0.1"]
TOML
t0="$(date +%s.%N)"
"$bin" --config "$work/tandem.toml" migrate up >/dev/null
"$bin" --config "$work/tandem.toml" extract --api-token "$token" --domain "$sim" >"$work/tandem.out" 2>&1
t1="$(date +%s.%N)"
echo "tandem extract: $(tail -n 3 "$work/tandem.out" | tr '\n' ' ') ($(echo "$t1 - $t0" | bc) s wall)"

# The Singer tap: every stream selected by its own discovery.
echo "{\"api_token\": \"$token\", \"start_date\": \"2000-01-01T00:00:00Z\"}" >"$work/singer.json"
measure tap-pipedrive "$venvs-tap-pipedrive/bin/python" "$here/loopback.py" "$sim" singer -- --config "$work/singer.json"

# The Airbyte source: its discovered catalog, every stream full refresh.
echo "{\"api_token\": \"$token\", \"replication_start_date\": \"2000-01-01T00:00:00Z\"}" >"$work/airbyte.json"
"$venvs-airbyte-source-pipedrive/bin/python" "$here/loopback.py" "$sim" airbyte -- discover --config "$work/airbyte.json" >"$work/discover.out" 2>"$work/discover.err" || true
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
catalog = None
for line in open(f"{work}/discover.out"):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("type") == "CATALOG":
        catalog = m["catalog"]
streams = [] if catalog is None else [
    {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for s in catalog["streams"]
]
json.dump({"streams": streams}, open(f"{work}/configured.json", "w"))
print(f"airbyte catalog: {len(streams)} streams")
PY
measure source-pipedrive "$venvs-airbyte-source-pipedrive/bin/python" "$here/loopback.py" "$sim" airbyte -- read --config "$work/airbyte.json" --catalog "$work/configured.json"
echo "outputs in $work"
