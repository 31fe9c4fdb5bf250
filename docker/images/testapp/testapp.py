"""cloudrun-emulator test application; one mode per test need.

    testapp.py serve [--port N]   HTTP on N, else $PORT, else 8080 (all interfaces)
    testapp.py exit N [MESSAGE]   print MESSAGE (default "exiting with N") to stderr, exit N
    testapp.py sleep              never listen; wait for SIGTERM

serve answers:
    GET /                      "hello from $K_REVISION"
    GET /healthz               200 "ok"
    GET /env/NAME              the value of env var NAME (404 if unset)
    GET /file?path=P           the contents of file P (404 if missing)
    GET /proxy/TARGET/REST     GET http://localhost:TARGET/REST (TARGET is PORT or HOST:PORT)
                               and answer with its status and body: a stand-in ingress
and prints one line per request to stdout. SIGTERM exits 0 at once.
"""

import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        status, body = route(url)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def route(url):
    path = url.path
    if path == "/":
        return 200, ("hello from %s" % os.environ.get("K_REVISION", "")).encode()
    if path == "/healthz":
        return 200, b"ok"
    if path.startswith("/env/"):
        value = os.environ.get(path[len("/env/"):])
        return (200, value.encode()) if value is not None else (404, b"unset")
    if path == "/file":
        name = urllib.parse.parse_qs(url.query).get("path", [""])[0]
        try:
            with open(name, "rb") as f:
                return 200, f.read()
        except OSError as e:
            return 404, str(e).encode()
    if path.startswith("/proxy/"):
        target, _, rest = path[len("/proxy/"):].partition("/")
        host = target if ":" in target else "localhost:" + target
        query = "?" + url.query if url.query else ""
        try:
            with urllib.request.urlopen("http://%s/%s%s" % (host, rest, query), timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError as e:
            return 502, ("proxy to %s failed: %s" % (host, e)).encode()
    return 404, b"not found"


def serve(args):
    port = int(args[args.index("--port") + 1]) if "--port" in args else int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print("listening on port %d" % port, flush=True)
    server.serve_forever()


def main(argv):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mode = argv[0] if argv else "serve"
    if mode == "serve":
        serve(argv[1:])
    elif mode == "exit":
        code = int(argv[1]) if len(argv) > 1 else 1
        message = argv[2] if len(argv) > 2 else "exiting with %d" % code
        print(message, file=sys.stderr, flush=True)
        sys.exit(code)
    elif mode == "sleep":
        print("sleeping", flush=True)
        while True:
            time.sleep(3600)
    else:
        print("unknown mode %r" % mode, file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
