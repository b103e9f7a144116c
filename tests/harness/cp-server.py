#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A small HTTPS control plane for tests: POST /api/dns-management with the
"list" and "resolve" actions of docs/control-plane.md, over TLS with the
certificate the test made, on 127.0.0.1.

Everything it serves is re-read from the state directory at every request,
so a test steers it by writing files (write a temporary file and rename it
over the real one):

  peers.json  the peers document "list" returns and "resolve" looks in
  token       the bearer token it accepts (surrounding whitespace ignored)
  mode        how to misbehave; missing or "normal" to behave:
                malformed    "list" returns a truncated JSON document
                invalid      "list" returns a peers document that is JSON
                             but not valid (bad name, bad address)
                401          refuses every token
                500          answers HTTP 500 with {"error": ...}
                hang         accepts and reads the request, never answers
                redirect     answers 302 to the same URL over plain http
                huge         announces a 100 MiB body (Content-Length)
                huge-stream  streams a body with no length, past 64 MiB

requests.log gets one JSON object per line for every request it answers
(or hangs on): time, action, the If-None-Match it got, the status it
returned; TLS handshakes that fail are logged as {"tls_error": ...}, and
connections closed without a request as {"closed_without_request": true}.

Usage: cp-server.py --cert PEM --key PEM --dir STATE [--org ID] [--port N]
                    [--port-file FILE]
Port 0 (the default) picks a free one; --port-file receives the port once
the server listens.
"""

import argparse
import hashlib
import http.server
import json
import os
import ssl
import sys
import threading
import time

API_PATH = "/api/dns-management"
REQUEST_MAX = 64 << 10
HANG_MAX = 120.0
MIB = 1 << 20

MALFORMED = b'{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ['
INVALID = json.dumps({
    "domain": "yourorg.zt.net",
    "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]},
              {"name": "bad name!", "addresses": ["300.1.2.3"]}],
}).encode()


class State:
    def __init__(self, directory, org):
        self.dir = directory
        self.org = org
        self.lock = threading.Lock()

    def read(self, name, default=None):
        try:
            with open(os.path.join(self.dir, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return default

    def mode(self):
        return (self.read("mode", b"normal").decode().strip() or "normal")

    def token(self):
        return self.read("token", b"").decode().strip()

    def log(self, entry):
        entry = dict(entry, time=round(time.time(), 3))
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock:
            with open(os.path.join(self.dir, "requests.log"), "a") as f:
                f.write(line)


def etag_of(body):
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches(if_none_match, etag):
    if if_none_match is None:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class Handler(http.server.BaseHTTPRequestHandler):
    # Keep-alive, so the client's connection reuse is exercised too.
    protocol_version = "HTTP/1.1"
    server_version = "cp-server"
    handled = 0

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_body(status, body, extra)

    def send_body(self, status, body, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def do_GET(self):
        self.handled += 1
        self.send_json(405, {"error": "POST only"})

    def do_POST(self):
        self.handled += 1
        state = self.server.state
        mode = state.mode()
        entry = {"path": self.path, "if_none_match": self.headers.get("If-None-Match"), "mode": mode}
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > REQUEST_MAX:
            entry["status"] = 400
            state.log(entry)
            self.send_json(400, {"error": "bad Content-Length"})
            return
        raw = self.rfile.read(length)
        try:
            req = json.loads(raw)
        except ValueError:
            req = None
        if isinstance(req, dict):
            entry["action"] = req.get("action")
            entry["org_id"] = req.get("org_id")
            if "name" in req:
                entry["name"] = req.get("name")
        status = self.answer(state, mode, req)
        entry["status"] = status
        state.log(entry)

    def answer(self, state, mode, req):
        if mode == "hang":
            # Read, then say nothing until the test changes its mind.
            deadline = time.monotonic() + HANG_MAX
            while state.mode() == "hang" and time.monotonic() < deadline:
                time.sleep(0.05)
            self.close_connection = True
            return 0
        if self.path != API_PATH:
            self.send_json(404, {"error": "no such endpoint"})
            return 404
        auth = self.headers.get("Authorization", "")
        if mode == "401" or not state.token() or auth != "Bearer " + state.token():
            self.send_json(401, {"error": "invalid or expired token"})
            return 401
        if mode == "500":
            self.send_json(500, {"error": "internal error (test)"})
            return 500
        if mode == "redirect":
            host, port = self.server.server_address[:2]
            self.send_json(302, {"error": "moved"},
                           {"Location": "http://%s:%d%s" % (host, port, API_PATH)})
            return 302
        if not isinstance(req, dict):
            self.send_json(400, {"error": "the request is not a JSON object"})
            return 400
        if state.org is not None and req.get("org_id") != state.org:
            self.send_json(404, {"error": "unknown org_id"})
            return 404
        action = req.get("action")
        if action == "list":
            return self.list(state, mode)
        if action == "resolve":
            return self.resolve(state, req.get("name"))
        self.send_json(400, {"error": "unknown action"})
        return 400

    def list(self, state, mode):
        if mode == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(100 * MIB))
            self.end_headers()
            self.stream(100 * MIB)
            return 200
        if mode == "huge-stream":
            # HTTP/1.0 style: the body ends when the connection does.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.stream(80 * MIB)
            return 200
        if mode == "malformed":
            body = MALFORMED
        elif mode == "invalid":
            body = INVALID
        else:
            body = state.read("peers.json", b"")
        etag = etag_of(body)
        if matches(self.headers.get("If-None-Match"), etag):
            self.send_body(304, b"", {"ETag": etag})
            return 304
        self.send_body(200, body, {"ETag": etag})
        return 200

    def stream(self, total):
        chunk = b" " * MIB
        sent = 0
        try:
            while sent < total:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (OSError, ssl.SSLError):
            pass
        self.close_connection = True

    def resolve(self, state, name):
        try:
            doc = json.loads(state.read("peers.json", b"{}"))
        except ValueError:
            self.send_json(500, {"error": "peers.json is not JSON"})
            return 500
        if not isinstance(name, str) or not name:
            self.send_json(400, {"error": "name missing"})
            return 400
        domain = doc.get("domain", "")
        want = name.rstrip(".").lower()
        for peer in doc.get("peers", []):
            fqdn = "%s.%s" % (peer["name"], domain)
            if want in (peer["name"].lower(), fqdn.lower()):
                self.send_json(200, {"name": peer["name"], "fqdn": fqdn,
                                     "addresses": peer.get("addresses", [])})
                return 200
        self.send_json(404, {"error": "not found"})
        return 404


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, context, state):
        self.context = context
        self.state = state
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # The handshake runs on the connection's own thread, so a client
        # that stalls it (or refuses the certificate) blocks nobody else.
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.state.log({"tls_error": str(e)})
            return
        handled = 0
        try:
            handled = self.RequestHandlerClass(tls, client_address, self).handled
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass
        if handled == 0:
            # A client that checks the host name after the handshake
            # (libcurl does) hangs up here, having sent nothing.
            self.state.log({"closed_without_request": True})


def main():
    ap = argparse.ArgumentParser(description="HTTPS control plane for tests")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--org", default=None)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)

    server = Server(("127.0.0.1", args.port), context, State(args.dir, args.org))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % server.server_address[1])
        os.rename(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
