#!/usr/bin/env bash
# The side-by-side of issue 20: the same extraction by tandem and by the open-source Pipedrive
# extractors data teams use (the Singer tap `tap-pipedrive`, the Airbyte source
# `airbyte-source-pipedrive`, both from PyPI), on the same simulator (127.0.0.1 only), the same
# size and the same burst limit. Prints records, seconds, records/s and requests for each.
#
#   bench/extractors/run.sh [PERSONS] [DEALS] [ORGANIZATIONS] [ACTIVITIES] [NOTES]
#
# BURST (default 20: requests per 2 s per token, the Lite plan's API-token limit; 0 for no
# limit) is the simulator's burst limit. The simulator runs with `--legacy-v1`: both extractors
# still call v1 reads Pipedrive put out of support on 2026-08-01 (`/v1/organizations`, a deal's
# `/v1/deals/{id}/products` and `/flow`), which it then serves as the January 2026 v1 document
# describes them. Each extractor runs the streams tandem extracts too: the per-deal streams
# (`deal_products`, the Singer tap's `dealflow`: one request per deal) and the Airbyte source's
# `mail`, `goals`, `roles` and `permission_sets` are not selected.
#
# EXTRACTOR_TIMEOUT (default 1800) bounds each extractor's run. ONLY_TANDEM=1 stops after
# tandem's extraction (its time and peak RSS, the simulator in its own process).
#
# Needs the release `tandem` binary ($TANDEM_BIN, default $CARGO_TARGET_DIR/release/tandem) and
# python3. The extractors are installed (when missing) into one venv each under /tmp
# (VENVS=/tmp/extractors: /tmp/extractors-tap-pipedrive, /tmp/extractors-airbyte-source-pipedrive);
# they are run through loopback.py, which rewrites every request to the simulator and refuses
# any connection, datagram or name lookup that is not loopback; its self-test runs first and the
# script stops if anything could get out. loopback.py prints how many requests it sent to the
# simulator and how many it refused.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
persons="${1:-10000}"; deals="${2:-10000}"; orgs="${3:-5000}"; activities="${4:-20000}"; notes="${5:-5000}"
venvs="${VENVS:-/tmp/extractors}"   # one venv per extractor: their pins conflict (jsonschema 2 vs 4)
bin="${TANDEM_BIN:-${CARGO_TARGET_DIR:-target}/release/tandem}"
work="$(mktemp -d /tmp/tandem-extractors.XXXXXX)"
limit="${EXTRACTOR_TIMEOUT:-1800}"   # seconds per extractor
trap 'kill "${sim_pid:-}" 2>/dev/null || true' EXIT INT TERM

for pkg in tap-pipedrive airbyte-source-pipedrive; do
  v="$venvs-$pkg"
  if [ ! -x "$v/bin/python" ]; then python3 -m venv "$v"; fi
  # `python -m pip`, not `bin/pip`: a venv copied from another path keeps the other's shebang.
  "$v/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1 \
    || "$v/bin/python" -m pip install -q "$pkg" || echo "pip install $pkg failed (see above)"
  echo "$pkg $("$v/bin/python" -m pip show "$pkg" 2>/dev/null | sed -n 's/^Version: //p')"
done

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
burst="${BURST:-20}"
limit_flag=()
if [ "$burst" != 0 ]; then limit_flag=(--burst "$burst"); fi
echo "simulator: $persons persons, $deals deals, $orgs organizations, $activities activities, $notes notes, 2000 leads, 1000 products; burst ${burst:-none} / 2 s; --legacy-v1"
"$bin" sim --port "$port" --persons "$persons" --deals "$deals" --organizations "$orgs" \
  --activities "$activities" --notes "$notes" --leads 2000 --products 1000 --seed 7 \
  --legacy-v1 "${limit_flag[@]}" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 3000); do grep -q "listening on" "$work/sim.log" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" "$work/sim.log" || { echo "the simulator did not start:"; cat "$work/sim.log"; exit 1; }
sim="http://127.0.0.1:$port"
token="sim-api-token"

# The guard first, in each extractor's own interpreter: nothing may leave 127.0.0.1.
for pkg in tap-pipedrive airbyte-source-pipedrive; do
  if ! "$venvs-$pkg/bin/python" "$here/loopback.py" "$sim" selftest >"$work/selftest-$pkg.out" 2>&1; then
    cat "$work/selftest-$pkg.out"; echo "loopback.py's guard failed in $pkg's venv: not running the extractors"; exit 1
  fi
  echo "$pkg: $(tail -n 1 "$work/selftest-$pkg.out")"
done

measure() { # name, command...
  local name="$1"; shift
  local t0; t0="$(date +%s.%N)"
  local status=0
  timeout -k 10 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err" || status=$?
  local t1; t1="$(date +%s.%N)"
  case "$status" in
    0) ;;
    124) echo "$name stopped after $limit s (EXTRACTOR_TIMEOUT)" ;;
    *) echo "$name exited with $status (see $work/$name.err)" ;;
  esac
  local records; records="$(grep -c '"type": *"RECORD"' "$work/$name.out" || true)"
  # Endpoints Pipedrive removed from v1 answer 410 Gone (the simulator does too).
  local gone; gone="$(cat "$work/$name.out" "$work/$name.err" | grep -c -E '410 Client Error|HTTP-error-code: 410' || true)"
  local limited; limited="$(cat "$work/$name.out" "$work/$name.err" | grep -c -E '429 Client Error|HTTP-error-code: 429|Rate limit' || true)"
  printf '%-20s records %-9s seconds %-8.1f records/s %-9.0f 410s %-5s 429 lines %-5s %s\n' \
    "$name" "$records" "$(echo "$t1 - $t0" | bc)" "$(echo "$records / ($t1 - $t0)" | bc -l)" \
    "$gone" "$limited" "$(grep -h 'loopback.py:' "$work/$name.err" | tail -n 1)"
  python3 - "$work/$name.out" <<'PY'
import collections, json, sys
counts = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("type") == "RECORD":
        counts[m.get("stream") or m.get("record", {}).get("stream")] += 1
print("  per stream: " + (", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "none"))
PY
}

# tandem extract into a fresh SQLite database.
cat >"$work/tandem.toml" <<TOML
[database]
url = "sqlite://$work/tandem.db"
[security]
egress_allowed_hosts = ["127.0.0.1"]
[pipedrive]
# The simulator's origin is the one non-Pipedrive host tandem's CRM client may reach.
oauth_base_url = "$sim"
TOML
t0="$(date +%s.%N)"
"$bin" --config "$work/tandem.toml" migrate up >/dev/null
/usr/bin/time -v -o "$work/tandem.time" "$bin" --config "$work/tandem.toml" extract --api-token "$token" --domain "$sim" >"$work/tandem.out" 2>&1
t1="$(date +%s.%N)"
echo "tandem extract: $(tail -n 1 "$work/tandem.out") ($(echo "$t1 - $t0" | bc) s wall, peak RSS $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/tandem.time") KiB)"
if [ -n "${ONLY_TANDEM:-}" ]; then echo "outputs in $work"; exit 0; fi

# The Singer tap: its own discovery, every stream and field selected (a stream the catalog does
# not mark `selected` is skipped).
echo "{\"api_token\": \"$token\", \"start_date\": \"2000-01-01T00:00:00Z\"}" >"$work/singer.json"
"$venvs-tap-pipedrive/bin/python" "$here/loopback.py" "$sim" singer -- --config "$work/singer.json" --discover >"$work/singer-discover.out" 2>"$work/singer-discover.err" || true
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
try:
    catalog = json.load(open(f"{work}/singer-discover.out"))
except ValueError:
    catalog = {"streams": []}
# One request per deal, and not a stream tandem extracts: not selected.
skipped = {"deal_products", "dealflow"}
selected = []
for stream in catalog["streams"]:
    on = stream["tap_stream_id"] not in skipped
    for entry in stream.get("metadata", []):
        entry.setdefault("metadata", {})["selected"] = on
    if not any(e.get("breadcrumb") == [] for e in stream.get("metadata", [])):
        stream.setdefault("metadata", []).append({"breadcrumb": [], "metadata": {"selected": on}})
    if on:
        selected.append(stream["tap_stream_id"])
json.dump(catalog, open(f"{work}/singer-catalog.json", "w"))
print(f"singer catalog: {len(catalog['streams'])} streams, selected {len(selected)}: {' '.join(sorted(selected))}")
PY
measure tap-pipedrive "$venvs-tap-pipedrive/bin/python" "$here/loopback.py" "$sim" singer -- --config "$work/singer.json" --catalog "$work/singer-catalog.json"

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
# One request per deal (`deal_products`), or not a stream tandem extracts: not selected.
skipped = {"deal_products", "mail", "goals", "roles", "permission_sets"}
found = [] if catalog is None else catalog["streams"]
streams = [
    {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
    for s in found if s["name"] not in skipped
]
json.dump({"streams": streams}, open(f"{work}/configured.json", "w"))
print(f"airbyte catalog: {len(found)} streams, selected {len(streams)}: {' '.join(sorted(s['stream']['name'] for s in streams))}")
PY
measure source-pipedrive "$venvs-airbyte-source-pipedrive/bin/python" "$here/loopback.py" "$sim" airbyte -- read --config "$work/airbyte.json" --catalog "$work/configured.json"
echo "outputs in $work"
