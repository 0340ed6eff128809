#!/usr/bin/env python3
"""Demo upstream for the README's run command: answers every request with a JSON echo of the
method, path and the headers it received, so you can see the identity headers the proxy injected
(and that no Authorization header arrived)."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"upstream": "demo", "method": self.command, "path": self.path,
                           "headers": {k: v for k, v in self.headers.items()}}, indent=2) + "\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    server = ThreadingHTTPServer(("127.0.0.1", port), Echo)
    # Port 0 picks a free port: say which (tests/deploy/image_check.py reads it).
    print(f"demo upstream listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
