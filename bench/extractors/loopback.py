"""Runs an open-source Pipedrive extractor against the simulator on 127.0.0.1, never Pipedrive.

    python loopback.py SIM_URL singer  -- <tap-pipedrive arguments>
    python loopback.py SIM_URL airbyte -- <source-pipedrive arguments>
    python loopback.py SIM_URL selftest        # checks the guard; exits 1 if anything got out

The extractors hard-code Pipedrive's hosts (`https://api.pipedrive.com`, or
`https://{domain}.pipedrive.com`). Every request any of them sends goes through
`requests.Session.send` (the module-level `requests.get` too); this wrapper rewrites the
scheme, host and port of each request to SIM_URL (and `/v1/…` to `/api/v1/…`, the path the
simulator serves), and refuses, before any byte leaves, a request whose rewritten host is not
127.0.0.1.

Two guards below that refuse any other traffic, whatever library sends it:
- `socket.socket.connect`/`connect_ex` are wrapped: only loopback IP addresses, `localhost` and
  Unix sockets, checked before any name is resolved;
- an audit hook (`sys.addaudithook`, which cannot be removed) refuses `socket.connect`,
  `sendto` and `sendmsg` to anything but loopback or Unix sockets, and name lookups
  (`getaddrinfo`, `gethostbyname`, ...) of anything but loopback names, so that even code using
  `_socket` directly, or UDP, or DNS, cannot reach the network.
"""

import ipaddress
import os
import signal
import socket
import sys
import urllib.parse

sim = urllib.parse.urlsplit(sys.argv[1])
assert sim.hostname == "127.0.0.1", "the simulator must be on 127.0.0.1"
kind = sys.argv[2]
args = sys.argv[4:] if len(sys.argv) > 3 and sys.argv[3] == "--" else sys.argv[3:]
refused = {"count": 0}


class LoopbackRefused(ConnectionRefusedError):
    pass


def is_loopback_host(host):
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.localdomain", ""):
        # "" is this host (INADDR_ANY), never a remote one.
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def refuse(what, target):
    refused["count"] += 1
    raise LoopbackRefused(f"loopback.py: refused {what} to {target!r}")


def check_address(sock, address, what):
    family = getattr(sock, "family", None)
    if family == getattr(socket, "AF_UNIX", None):
        return
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if is_loopback_host(address[0]):
            return
    refuse(what, address)


def audit(event, event_args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = event_args[0], event_args[1]
        if address is None:  # sendmsg on a connected socket
            return
        check_address(sock, address, event.split(".")[1])
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        host = event_args[0]
        if host is not None and not is_loopback_host(host):
            refuse("a name lookup", host)
    elif event in ("socket.gethostbyaddr", "socket.getnameinfo"):
        host = event_args[0][0] if isinstance(event_args[0], tuple) else event_args[0]
        if not is_loopback_host(host):
            refuse("a reverse lookup", host)


sys.addaudithook(audit)

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def connect(self, address):
    check_address(self, address, "a connection")
    return _connect(self, address)


def connect_ex(self, address):
    check_address(self, address, "a connection")
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex

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
    if urllib.parse.urlsplit(request.url).hostname != "127.0.0.1":
        refuse("a request", request.url)
    rewritten["count"] += 1
    return _send(self, request, **kwargs)


requests.Session.send = send
running = {"name": None}


def on_term(*_):
    # run.sh's timeout sends SIGTERM: print the counts and leave at once (the Airbyte CDK's
    # worker threads would keep a plain `sys.exit` waiting).
    if running["name"]:
        report(running["name"])
    os._exit(143)


signal.signal(signal.SIGTERM, on_term)


def report(name):
    # To file descriptor 2 itself: the Airbyte CDK points `sys.stderr` at its stdout messages.
    line = (
        f"loopback.py: {rewritten['count']} requests sent to {name} via {sim.netloc}, "
        f"{refused['count']} refused\n"
    )
    os.write(2, line.encode())


def selftest():
    """Tries every way out the guards must close, and one way in they must leave open."""
    import _socket

    failures = []

    def must_refuse(name, attempt):
        try:
            attempt()
        except LoopbackRefused as e:
            print(f"selftest: refused   {name}: {e}")
            return
        except BaseException as e:  # noqa: BLE001 - anything else means it was tried
            failures.append(name)
            print(f"selftest: NOT GUARDED {name}: {type(e).__name__}: {e}")
            return
        failures.append(name)
        print(f"selftest: NOT GUARDED {name}: it went through")

    def tcp(host):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((host, 443))
        finally:
            s.close()

    def raw_tcp():
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(("1.1.1.1", 443))
        finally:
            s.close()

    def raw_connect_ex():
        s = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM)
        try:
            s.connect_ex(("2606:4700:4700::1111", 443))
        finally:
            s.close()

    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"\0", ("8.8.8.8", 53))
        finally:
            s.close()

    must_refuse("TCP to 1.1.1.1", lambda: tcp("1.1.1.1"))
    must_refuse("TCP to a host name", lambda: tcp("api.pipedrive.com"))
    must_refuse("TCP through _socket", raw_tcp)
    must_refuse("connect_ex over IPv6 through _socket", raw_connect_ex)
    must_refuse("UDP to 8.8.8.8", udp)
    must_refuse("a DNS lookup", lambda: socket.getaddrinfo("api.pipedrive.com", 443))
    must_refuse("create_connection", lambda: socket.create_connection(("example.com", 80), 1))
    must_refuse("a mapped IPv4 address", lambda: _socket.socket(_socket.AF_INET6).connect(("::ffff:1.1.1.1", 443)))
    # Allowed: the simulator, through the extractors' own URL.
    response = requests.get("https://api.pipedrive.com/v1/users/me", params={"api_token": "sim-api-token"}, timeout=5)
    reached = response.url.startswith(f"{sim.scheme}://{sim.netloc}/api/v1/users/me")
    print(f"selftest: allowed   https://api.pipedrive.com/v1/users/me -> {response.url.split('?')[0]} ({response.status_code})")
    if not reached:
        failures.append("the rewrite to the simulator")
    if failures:
        print(f"selftest: FAILED: {', '.join(failures)}")
        sys.exit(1)
    print(f"selftest: ok ({refused['count']} refused, {rewritten['count']} sent to the simulator)")


if kind == "singer":
    import tap_pipedrive.cli

    sys.argv = ["tap-pipedrive"] + args
    running["name"] = "tap-pipedrive"
    try:
        tap_pipedrive.cli.main()
    finally:
        report("tap-pipedrive")
elif kind == "airbyte":
    # source-pipedrive 2.3.x declares Python 3.10 and 3.11, but its `NullCheckedDpathExtractor`
    # has `decoder: Decoder = JsonDecoder(parameters={})`, a dataclass default that Python 3.11
    # refuses as mutable (an unhashable dataclass) when the CDK's JsonDecoder is one. Making
    # JsonDecoder hashable by identity lets the class be defined as on 3.10 (the default is one
    # shared, stateless decoder either way).
    from airbyte_cdk.sources.declarative.decoders.json_decoder import JsonDecoder

    if JsonDecoder.__hash__ is None:
        JsonDecoder.__hash__ = object.__hash__
    from source_pipedrive.run import run

    sys.argv = ["source-pipedrive"] + args
    running["name"] = "source-pipedrive"
    try:
        run()
    finally:
        report("source-pipedrive")
elif kind == "selftest":
    selftest()
else:
    raise SystemExit(f"unknown extractor {kind}")
