"""The web stack's backend.

GET /health    -> {"status": "ok"}
GET /api/data  -> {"now": ..., "version": ...} from SELECT NOW(), VERSION(), or a JSON 500
                  naming the error when the database cannot be reached.

The database is reached through the Cloud SQL Auth Proxy sidecar on DB_HOST:DB_PORT
(127.0.0.1:5432); DB_PASSWORD comes from Secret Manager.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2


def query():
    connection = psycopg2.connect(
        host=os.environ.get("DB_HOST", "127.0.0.1"),
        port=int(os.environ.get("DB_PORT", "5432")),
        dbname=os.environ["DB_NAME"],
        user=os.environ["DB_USER"],
        password=os.environ["DB_PASSWORD"],
        connect_timeout=3,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT NOW(), VERSION()")
            now, version = cursor.fetchone()
            return {"now": now.isoformat(), "version": version}
    finally:
        connection.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, {"status": "ok", "service": "backend"})
        elif self.path == "/api/data":
            try:
                self.answer(200, query())
            except psycopg2.Error as error:
                print(json.dumps({"severity": "ERROR", "message": f"database error: {error}".strip()}), flush=True)
                self.answer(500, {"error": "database unavailable", "detail": str(error).strip()})
        else:
            self.answer(404, {"error": "not found"})

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"backend listening on {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
