"""cloudrun-emulator sqlapp: answers HTTP on $PORT (default 8080).

    GET /                 "ok"
    GET /query?host=H[&port=P][&sql=S]
                          connects with libpq to H (a TCP host, or a directory holding the
                          unix socket such as /cloudsql/PROJECT:REGION:INSTANCE) as $DB_USER
                          with $DB_PASS to $DB_NAME, runs S (default `SELECT now(), version()`)
                          and answers the first row, columns joined by " | "; 500 with the
                          error text when that fails.
"""

import os
import signal
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2


def query(params):
    host = params.get("host", ["127.0.0.1"])[0]
    port = params.get("port", ["5432"])[0]
    sql = params.get("sql", ["SELECT now(), version()"])[0]
    connection = psycopg2.connect(
        host=host, port=port, user=os.environ.get("DB_USER", "postgres"),
        password=os.environ.get("DB_PASS", ""), dbname=os.environ.get("DB_NAME", "postgres"),
        connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone() if cursor.description else ()
            return " | ".join(str(value) for value in (row or ()))
    finally:
        connection.close()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/":
            status, body = 200, "ok"
        elif url.path == "/query":
            try:
                status, body = 200, query(urllib.parse.parse_qs(url.query))
            except Exception as error:  # the test reads the error text
                status, body = 500, "%s: %s" % (type(error).__name__, str(error).strip())
        else:
            status, body = 404, "not found"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print("listening on port %d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
