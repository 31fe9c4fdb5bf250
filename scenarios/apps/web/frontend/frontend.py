"""The web stack's frontend: serves index.html at / and answers /health."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = open(os.path.join(os.path.dirname(__file__), "index.html"), "rb").read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, "application/json", b'{"status":"ok","service":"frontend"}')
        elif self.path in ("/", "/index.html"):
            self.answer(200, "text/html; charset=utf-8", PAGE)
        else:
            self.answer(404, "text/plain", b"not found\n")

    def answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("FRONTEND_PORT", "3000"))
    print(f"frontend listening on {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
