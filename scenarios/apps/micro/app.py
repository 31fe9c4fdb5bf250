"""The microservices scenario: one program, four Cloud Run services (the first argument).

auth      POST /register {email, password}   bcrypt hash stored in Postgres
          POST /login {email, password}      -> {"token": JWT (HS256, key JWT_SECRET)}
          GET  /verify                       -> the token's claims, or 401
          GET  /profile                      -> the user's row, guarded by the token
product   GET  /products                     -> the catalogue, Redis cache-aside (X-Cache: MISS|HIT)
          POST /products/ID/reserve {quantity}
                                             stock decremented in a transaction with
                                             SELECT ... FOR UPDATE; 409 when short; cache dropped
order     POST /orders {product_id, quantity}
                                             reserves stock at PRODUCT_URL with the instance's ID
                                             token, stores the order, publishes it to Pub/Sub
frontend  /api/auth/*, /api/products*, /api/orders*
                                             forwarded to the private services with the
                                             instance's ID token in X-Serverless-Authorization;
                                             the caller's Authorization header goes along

Backends read DB_CREDENTIALS (a JSON secret: user, password, database) and reach Cloud SQL at
/cloudsql/INSTANCE_CONNECTION_NAME. Every service answers GET /health.
"""

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1] if len(sys.argv) > 1 else "frontend"
METADATA = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity"


def log(severity, message):
    print(json.dumps({"severity": severity, "message": f"{ROLE}: {message}"}), flush=True)


@contextlib.contextmanager
def database():
    """One transaction on a fresh connection: committed when the block ends, else rolled back."""
    import psycopg2

    credentials = json.loads(os.environ["DB_CREDENTIALS"])
    connection = psycopg2.connect(
        host="/cloudsql/" + os.environ["INSTANCE_CONNECTION_NAME"],
        dbname=credentials["database"],
        user=credentials["user"],
        password=credentials["password"],
        connect_timeout=5,
    )
    try:
        with connection:
            yield connection
    finally:
        connection.close()


def identity_token(audience):
    request = urllib.request.Request(
        f"{METADATA}?audience={audience}", headers={"Metadata-Flavor": "Google"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.read().decode()


def call(method, url, body=None, headers=None):
    """Calls a private service as this instance's service account: (status, headers, body)."""
    audience = url.split("/", 3)[:3]
    headers = dict(headers or {})
    headers["X-Serverless-Authorization"] = "Bearer " + identity_token("/".join(audience))
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class Refusal(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Auth:
    def __init__(self):
        import jwt

        self.jwt = jwt
        self.key = os.environ["JWT_SECRET"]

    def claims(self, handler):
        value = handler.headers.get("Authorization", "")
        if not value.startswith("Bearer "):
            raise Refusal(401, "missing bearer token")
        try:
            return self.jwt.decode(value[7:], self.key, algorithms=["HS256"])
        except self.jwt.InvalidTokenError as error:
            raise Refusal(401, f"invalid token: {error}") from error

    def handle(self, handler, method, path, body):
        import bcrypt

        if method == "POST" and path == "/register":
            email, password = body["email"], body["password"]
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            with database() as connection, connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO users (email, password_hash) VALUES (%s, %s) "
                    "ON CONFLICT (email) DO NOTHING RETURNING id",
                    (email, hashed),
                )
                row = cursor.fetchone()
            if row is None:
                raise Refusal(409, "email already registered")
            return 201, {"id": row[0], "email": email}
        if method == "POST" and path == "/login":
            with database() as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id, password_hash FROM users WHERE email = %s", (body["email"],)
                )
                row = cursor.fetchone()
            if row is None or not bcrypt.checkpw(body["password"].encode(), row[1].encode()):
                raise Refusal(401, "wrong email or password")
            now = int(time.time())
            token = self.jwt.encode(
                {"sub": str(row[0]), "email": body["email"], "iat": now, "exp": now + 3600},
                self.key,
                algorithm="HS256",
            )
            return 200, {"token": token}
        if method == "GET" and path == "/verify":
            return 200, self.claims(handler)
        if method == "GET" and path == "/profile":
            claims = self.claims(handler)
            with database() as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id, email, created_at FROM users WHERE id = %s", (int(claims["sub"]),)
                )
                user_id, email, created = cursor.fetchone()
            return 200, {"id": user_id, "email": email, "created_at": created.isoformat()}
        raise Refusal(404, "not found")


class Product:
    def __init__(self):
        import redis

        self.cache = redis.Redis(
            host=os.environ["REDIS_HOST"], port=int(os.environ["REDIS_PORT"]), socket_timeout=3
        )

    def handle(self, handler, method, path, body):
        if method == "GET" and path == "/products":
            cached = self.cache.get("products")
            if cached is not None:
                handler.extra_headers["X-Cache"] = "HIT"
                return 200, json.loads(cached)
            with database() as connection, connection.cursor() as cursor:
                cursor.execute("SELECT id, name, price_cents, stock FROM products ORDER BY id")
                products = [
                    {"id": i, "name": n, "price_cents": p, "stock": s}
                    for i, n, p, s in cursor.fetchall()
                ]
            self.cache.set("products", json.dumps(products), ex=300)
            handler.extra_headers["X-Cache"] = "MISS"
            return 200, products
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "products" and parts[2] == "reserve":
            product_id, quantity = int(parts[1]), int(body["quantity"])
            if quantity < 1:
                raise Refusal(400, "quantity must be at least 1")
            with database() as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT stock, price_cents FROM products WHERE id = %s FOR UPDATE", (product_id,)
                )
                row = cursor.fetchone()
                if row is None:
                    raise Refusal(404, f"no product {product_id}")
                stock, price = row
                if stock < quantity:
                    raise Refusal(409, f"only {stock} left of product {product_id}")
                cursor.execute(
                    "UPDATE products SET stock = stock - %s WHERE id = %s", (quantity, product_id)
                )
            self.cache.delete("products")
            return 200, {"product_id": product_id, "stock": stock - quantity, "price_cents": price}
        raise Refusal(404, "not found")


class Order:
    def __init__(self):
        self.product_url = os.environ["PRODUCT_URL"].rstrip("/")
        self.topic = f"projects/{os.environ['PROJECT']}/topics/{os.environ['ORDERS_TOPIC']}"
        self.pubsub = "http://" + os.environ["PUBSUB_EMULATOR_HOST"] + "/v1/"
        request = urllib.request.Request(self.pubsub + self.topic, data=b"{}", method="PUT")
        request.add_header("Content-Type", "application/json")
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as error:
            if error.code != 409:
                raise

    def publish(self, event):
        import base64

        message = {"data": base64.b64encode(json.dumps(event).encode()).decode()}
        request = urllib.request.Request(
            self.pubsub + self.topic + ":publish",
            data=json.dumps({"messages": [message]}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())["messageIds"][0]

    def handle(self, handler, method, path, body):
        if method == "POST" and path == "/orders":
            product_id, quantity = int(body["product_id"]), int(body.get("quantity", 1))
            status, _, answer = call(
                "POST",
                f"{self.product_url}/products/{product_id}/reserve",
                json.dumps({"quantity": quantity}).encode(),
            )
            if status != 200:
                detail = answer.decode(errors="replace")
                raise Refusal(status if status in (404, 409) else 502, f"product service: {detail}")
            reserved = json.loads(answer)
            with database() as connection, connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO orders (product_id, quantity, total_cents) VALUES (%s, %s, %s) "
                    "RETURNING id",
                    (product_id, quantity, quantity * reserved["price_cents"]),
                )
                order_id = cursor.fetchone()[0]
            event = {"order_id": order_id, "product_id": product_id, "quantity": quantity}
            message_id = self.publish(event)
            return 201, dict(event, message_id=message_id, stock_left=reserved["stock"])
        raise Refusal(404, "not found")


class Frontend:
    def __init__(self):
        self.routes = {
            "auth": os.environ["AUTH_URL"].rstrip("/"),
            "products": os.environ["PRODUCT_URL"].rstrip("/"),
            "orders": os.environ["ORDER_URL"].rstrip("/"),
        }

    def forward(self, handler, method, path, raw):
        parts = path.split("/", 3)
        if len(parts) < 3 or parts[1] != "api" or parts[2] not in self.routes:
            return False
        target = parts[2]
        rest = "/" + parts[3] if target == "auth" and len(parts) > 3 else path[len("/api"):]
        headers = {}
        if "Authorization" in handler.headers:
            headers["Authorization"] = handler.headers["Authorization"]
        status, answer_headers, body = call(method, self.routes[target] + rest, raw, headers)
        if "X-Cache" in answer_headers:
            handler.extra_headers["X-Cache"] = answer_headers["X-Cache"]
        handler.send_body(status, answer_headers.get("Content-Type", "application/json"), body)
        return True


SERVICES = {"auth": Auth, "product": Product, "order": Order, "frontend": Frontend}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    service = None

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        self.extra_headers = {}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else None
        if self.path == "/health":
            return self.answer(200, {"status": "ok", "service": ROLE})
        try:
            if isinstance(self.service, Frontend):
                if not self.service.forward(self, method, self.path, raw):
                    raise Refusal(404, "not found")
                return None
            body = json.loads(raw) if raw else {}
            status, document = self.service.handle(self, method, self.path, body)
            return self.answer(status, document)
        except Refusal as refusal:
            return self.answer(refusal.status, {"error": refusal.message})
        except (KeyError, ValueError) as error:
            return self.answer(400, {"error": f"bad request: {error}"})
        except Exception as error:  # any other failure is a JSON 500 and a log line
            log("ERROR", f"{method} {self.path}: {error!r}")
            return self.answer(500, {"error": "internal error", "detail": str(error)})

    def answer(self, status, document):
        self.send_body(status, "application/json", json.dumps(document).encode())

    def send_body(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    Handler.service = SERVICES[ROLE]()
    port = int(os.environ.get("PORT", "8080"))
    log("INFO", f"listening on {port}")
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
