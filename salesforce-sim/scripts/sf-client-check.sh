#!/usr/bin/env bash
# Runs the Python `simple-salesforce` client, unchanged, against a salesforce-sim instance:
# login by session id and instance URL, a create, a query and an update of a Lead.
#
# Usage: sf-client-check.sh INSTANCE_URL SESSION_ID CA_CERT_FILE
# The client always speaks https; the simulator answers TLS on the same port with a
# self-signed certificate, which requests trusts through REQUESTS_CA_BUNDLE.
# Exit status 77: simple-salesforce could not be installed (the caller skips).
set -euo pipefail
instance_url="$1"
session_id="$2"
ca_file="$3"
venv="${SF_CLIENT_VENV:-${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}}/sf-client-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2 || { echo "cannot create a Python venv" >&2; exit 77; }
fi
if ! "$venv/bin/python" -c "import simple_salesforce" 2>/dev/null; then
    "$venv/bin/pip" install --quiet simple-salesforce >&2 || { echo "pip cannot install simple-salesforce" >&2; exit 77; }
fi
REQUESTS_CA_BUNDLE="$ca_file" NO_PROXY="127.0.0.1,localhost" "$venv/bin/python" - "$instance_url" "$session_id" <<'PY'
import sys
from simple_salesforce import Salesforce

instance_url, session_id = sys.argv[1], sys.argv[2]
sf = Salesforce(instance_url=instance_url, session_id=session_id)
created = sf.Lead.create({"LastName": "Client", "Company": "Check", "Email": "client.check@example.com"})
assert created["success"], created
lead_id = created["id"]
found = sf.query("SELECT Id, Email FROM Lead WHERE Email = 'client.check@example.com'")
assert found["totalSize"] == 1 and found["records"][0]["Id"] == lead_id, found
status = sf.Lead.update(lead_id, {"Title": "Checked"})
assert status == 204, status
got = sf.Lead.get(lead_id)
assert got["Title"] == "Checked", got
print("ok", lead_id, sf.api_usage)
PY
