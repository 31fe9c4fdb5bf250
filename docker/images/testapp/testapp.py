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
    GET /metadata/PATH         GET PATH from the metadata server (metadata.google.internal)
                               with Metadata-Flavor: Google; /metadata-unflavored/PATH without
    GET /call?url=U            GET U with an ID token for U's service fetched from the metadata
        or ?url_env=NAME&path=P   server (GET $NAME + P), as a service calling another does;
        [&auth=none]           auth=none sends no token; answers with the callee's status/body
    GET /verify                verify the request's bearer ID token against the JWKS at
                               metadata.google.internal/oauth2/v3/certs (RS256, issuer, expiry,
                               audience = this service's URL, from Host); 200 with its claims
and prints one line per request to stdout. SIGTERM exits 0 at once.
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


METADATA = "http://metadata.google.internal"
ISSUER = "https://accounts.google.com"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/verify":
            status, body = verify(self.headers)
        else:
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
    if path.startswith("/metadata/") or path.startswith("/metadata-unflavored/"):
        flavored = path.startswith("/metadata/")
        rest = path.split("/", 2)[2]
        query = "?" + url.query if url.query else ""
        headers = {"Metadata-Flavor": "Google"} if flavored else {}
        return fetch(METADATA + "/computeMetadata/v1/" + rest + query, headers)
    if path == "/call":
        params = urllib.parse.parse_qs(url.query)
        one = lambda name, default="": params.get(name, [default])[0]
        base = os.environ.get(one("url_env"), "") if one("url_env") else one("url")
        if not base:
            return 400, b"no url"
        headers = {}
        if one("auth") != "none":
            audience = urllib.parse.quote(base, safe="")
            status, token = fetch(
                METADATA + "/computeMetadata/v1/instance/service-accounts/default/identity"
                "?audience=" + audience, {"Metadata-Flavor": "Google"})
            if status != 200:
                return 502, b"no identity token: " + token
            headers["Authorization"] = "Bearer " + token.decode()
        return fetch(base + one("path"), headers)
    return 404, b"not found"


def fetch(target, headers):
    request = urllib.request.Request(target, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 502, ("GET %s failed: %s" % (target, e)).encode()


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The DER prefix of a SHA-256 DigestInfo, as RS256 (RSASSA-PKCS1-v1_5) signs it.
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256_valid(signed, signature, n, e):
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    decrypted = pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big")
    digest = SHA256_PREFIX + hashlib.sha256(signed).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    return hmac.compare_digest(decrypted, expected)


def verify(headers):
    auth = headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return 401, b"no bearer token"
    token = auth[len("Bearer "):]
    try:
        head, claims, signature = token.split(".")
        header = json.loads(b64url(head))
        payload = json.loads(b64url(claims))
        status, jwks = fetch(METADATA + "/oauth2/v3/certs", {})
        if status != 200:
            return 502, b"no JWKS: " + jwks
        key = next(k for k in json.loads(jwks)["keys"] if k["kid"] == header["kid"])
        n = int.from_bytes(b64url(key["n"]), "big")
        e = int.from_bytes(b64url(key["e"]), "big")
    except (ValueError, KeyError, StopIteration) as error:
        return 401, ("unreadable token: %r" % error).encode()
    if header.get("alg") != "RS256" or not rs256_valid(
            (head + "." + claims).encode(), b64url(signature), n, e):
        return 401, b"bad signature"
    if payload.get("iss") != ISSUER:
        return 401, b"wrong issuer"
    if payload.get("exp", 0) <= time.time():
        return 401, b"expired"
    own_url = "http://" + headers.get("Host", "")
    if payload.get("aud") != own_url:
        return 401, ("audience %s is not %s" % (payload.get("aud"), own_url)).encode()
    answer = {k: payload.get(k) for k in ("email", "aud", "iss", "sub")}
    return 200, json.dumps(answer).encode()


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
