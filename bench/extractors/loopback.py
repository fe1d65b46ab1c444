"""Runs an open-source Pipedrive extractor against the simulator on 127.0.0.1, never Pipedrive.

    python loopback.py SIM_URL singer  -- <tap-pipedrive arguments>
    python loopback.py SIM_URL airbyte -- <source-pipedrive arguments>

The extractors hard-code Pipedrive's hosts (`https://api.pipedrive.com`, or
`https://{domain}.pipedrive.com`). Every request any of them sends goes through
`requests.Session.send` (the module-level `requests.get` too); this wrapper rewrites the
scheme, host and port of each request to SIM_URL (and `/v1/…` to `/api/v1/…`, the path the
simulator serves), and refuses, before any byte leaves, a request whose rewritten host is not
127.0.0.1. A socket-level guard refuses any other connection as well.
"""

import socket
import sys
import urllib.parse

sim = urllib.parse.urlsplit(sys.argv[1])
assert sim.hostname == "127.0.0.1", "the simulator must be on 127.0.0.1"
kind = sys.argv[2]
assert sys.argv[3] == "--"
args = sys.argv[4:]

_connect = socket.socket.connect


def loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("/"):
        raise ConnectionRefusedError(f"loopback.py: refused a connection to {host}")
    return _connect(self, address)


socket.socket.connect = loopback_only

import requests  # noqa: E402

_send = requests.Session.send
rewritten = {"count": 0}


def send(self, request, **kwargs):
    url = urllib.parse.urlsplit(request.url)
    path = url.path
    if path.startswith("/v1/"):
        path = "/api" + path
    elif path.startswith("/api/v1/") or path.startswith("/api/v2/"):
        pass
    elif not path.startswith("/api/"):
        path = "/api/v1" + path
    request.url = urllib.parse.urlunsplit((sim.scheme, sim.netloc, path, url.query, url.fragment))
    request.headers.pop("Host", None)
    assert urllib.parse.urlsplit(request.url).hostname == "127.0.0.1"
    rewritten["count"] += 1
    return _send(self, request, **kwargs)


requests.Session.send = send

if kind == "singer":
    import tap_pipedrive.cli

    sys.argv = ["tap-pipedrive"] + args
    try:
        tap_pipedrive.cli.main()
    finally:
        print(f"loopback.py: {rewritten['count']} requests sent to {sys.argv[0]} via {sim.netloc}", file=sys.stderr)
elif kind == "airbyte":
    from source_pipedrive.run import run

    sys.argv = ["source-pipedrive"] + args
    try:
        run()
    finally:
        print(f"loopback.py: {rewritten['count']} requests sent via {sim.netloc}", file=sys.stderr)
else:
    raise SystemExit(f"unknown extractor {kind}")
