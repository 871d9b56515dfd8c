#!/usr/bin/env python3
"""Loopback receiver for callback tests: verifies Standard Webhooks signatures.

usage: webhook_receiver.py SECRET   (SECRET: whsec_<base64 key>)

Listens on 127.0.0.1 (a free port, printed first on stdout), and prints one JSON line per
POST: {"path", "verified", "why", "headers": {webhook-*}, "body"}. The signature is checked
independently of wasmjail's code: HMAC-SHA256 over id.timestamp.body with the base64-decoded
key, compared to each "v1,<base64>" in webhook-signature, and the timestamp must be within 5
minutes. Paths: /ok answers 204; /fail-N answers 500 to the first N requests, then 204;
/redirect answers 302 to /ok. Stops when stdin closes or after 300 s.
"""
import base64
import hashlib
import hmac
import http.server
import json
import socketserver
import sys
import threading
import time

SECRET = sys.argv[1]
KEY = base64.b64decode(SECRET[len("whsec_"):])
counts = {}
lock = threading.Lock()


def verify(headers, body):
    msg_id, ts, sig = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not (msg_id and ts and sig):
        return False, "missing webhook-* headers"
    if abs(time.time() - int(ts)) > 300:
        return False, "timestamp too far from now"
    expected = base64.b64encode(hmac.new(KEY, b"%s.%s.%s" % (msg_id.encode(), ts.encode(), body), hashlib.sha256).digest()).decode()
    for part in sig.split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True, ""
    return False, "no v1 signature matches"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok, why = verify(self.headers, body)
        with lock:
            n = counts[self.path] = counts.get(self.path, 0) + 1
            line = {"path": self.path, "verified": ok, "why": why, "attempt": n,
                    "headers": {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("webhook-")},
                    "content_type": self.headers.get("Content-Type", ""), "body": body.decode("utf-8", "replace")}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        if self.path.startswith("/fail-") and n <= int(self.path[len("/fail-"):]):
            self.send_response(500)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
        else:
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    watcher = threading.Thread(target=lambda: sys.stdin.read(), daemon=True)
    watcher.start()
    deadline = time.time() + 300
    while watcher.is_alive() and time.time() < deadline:
        time.sleep(0.1)
    srv.shutdown()


if __name__ == "__main__":
    main()
