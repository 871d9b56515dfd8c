#!/usr/bin/env python3
"""Loopback HTTP server for download tests: serves a folder on 127.0.0.1, prints its port.

/hang never answers (for timeouts); /redirect/NAME redirects to /NAME. It stops when its
stdin closes or after 300 s, whichever comes first, so it never outlives a test run.
"""
import http.server
import os
import socketserver
import sys
import threading
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hang":
            time.sleep(30)
            return
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/" + self.path[len("/redirect/"):])
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    os.chdir(sys.argv[1])
    srv = Server(("127.0.0.1", 0), Handler)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    deadline = time.time() + 300
    watcher = threading.Thread(target=lambda: sys.stdin.read(), daemon=True)
    watcher.start()
    while watcher.is_alive() and time.time() < deadline:
        time.sleep(0.1)
    srv.shutdown()


if __name__ == "__main__":
    main()
