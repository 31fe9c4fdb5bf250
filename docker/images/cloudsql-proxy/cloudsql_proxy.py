"""cloudrun-emulator's stand-in for the Cloud SQL Auth Proxy.

Accepts the real proxy's command line:

  v2: cloud-sql-proxy [flags] NAME[?port=N&address=A&unix-socket=DIR&unix-socket-path=P]...
      flags: --port/-p, --address/-a, --unix-socket/-u, --structured-logs/-l, --health-check,
      --http-address, --http-port, --quitquitquit, --admin-port, --exit-zero-on-sigterm, and
      the credential / IP-type flags, which are accepted and have no effect here; any flag
      may also come from CSQL_PROXY_<FLAG>, names from CSQL_PROXY_INSTANCE_CONNECTION_NAME[_N].
  v1: cloud_sql_proxy -instances=NAME=tcp:[ADDR:]PORT,... | -dir=DIR -instances=NAME,...
      (or $INSTANCES).

Each instance is resolved through $CLOUDSQL_EMULATOR_TARGETS (`NAME=HOST:PORT,...`, set by the
emulator) and served by one `socat` listener. An instance the emulator does not know ends the
start with the real proxy's terminal error and exit code 1.
"""

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME_RE = re.compile(r"^[^:/?]+(:[^:/?]+)?:[^:/?]+:[^:/?]+$")
POSTGRES_PORT = 5432
READY_DEADLINE = 10.0

STRUCTURED = False
CHILDREN = []
STARTED = threading.Event()


class UsageError(Exception):
    pass


def log(message, error=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    if STRUCTURED:
        line = json.dumps({
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "severity": "ERROR" if error else "INFO",
            "message": message,
        })
    else:
        line = now.strftime("%Y/%m/%d %H:%M:%S ") + message
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


# Flags that take a value; everything else in BOOLEAN is a switch.
VALUED = {
    "port": "p", "address": "a", "unix-socket": "u", "http-address": None, "http-port": None,
    "admin-port": None, "credentials-file": "c", "token": "t", "json-credentials": "j",
    "max-connections": None, "max-sigterm-delay": None, "login-token": None,
    "impersonate-service-account": None, "sqladmin-api-endpoint": None, "universe-domain": None,
    "quota-project": None, "telemetry-project": None, "telemetry-prefix": None,
    "telemetry-sample-rate": None, "prometheus-namespace": None, "fuse": None,
    "fuse-tmp-dir": None, "config-file": None, "lazy-refresh": None,
    "min-sigterm-delay": None, "run-connection-test": None,
}
BOOLEAN = {
    "structured-logs": "l", "health-check": None, "quitquitquit": None,
    "exit-zero-on-sigterm": None, "auto-iam-authn": "i", "private-ip": None, "psc": None,
    "auto-ip": None, "quiet": None, "debug-logs": None, "gcloud-auth": "g", "debug": None,
    "prometheus": None, "disable-traces": None, "disable-metrics": None, "version": "v",
    "help": "h",
}


def parse_v2(argv):
    short = {v: k for k, v in list(VALUED.items()) + list(BOOLEAN.items()) if v}
    flags, names = {}, []
    for key, value in os.environ.items():
        if not key.startswith("CSQL_PROXY_"):
            continue
        flag = key[len("CSQL_PROXY_"):].lower().replace("_", "-")
        if flag == "instance-connection-name" or flag.startswith("instance-connection-name-"):
            names.append((flag, value))
        elif flag in VALUED:
            flags[flag] = value
        elif flag in BOOLEAN:
            flags[flag] = value.lower() in ("1", "true", "yes")
    names = [v for _, v in sorted(names)]
    args = list(argv)
    positional = []
    while args:
        arg = args.pop(0)
        if arg == "--":
            positional.extend(args)
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        body = arg.lstrip("-")
        key, eq, value = body.partition("=")
        if arg.startswith("-") and not arg.startswith("--") and key in short:
            key = short[key]
        if key in VALUED:
            if not eq:
                if not args:
                    raise UsageError("flag needs an argument: %s" % arg)
                value = args.pop(0)
            flags[key] = value
        elif key in BOOLEAN:
            flags[key] = (value.lower() in ("1", "true")) if eq else True
        else:
            raise UsageError("unknown flag: %s" % arg)
    return flags, positional or names


def plan_v2(argv):
    flags, names = parse_v2(argv)
    if flags.get("version"):
        print("cloud-sql-proxy version 2.25.3+cloudrun-emulator")
        sys.exit(0)
    global STRUCTURED
    STRUCTURED = bool(flags.get("structured-logs"))
    if not names:
        raise UsageError("missing instance_connection_name (e.g., project:region:instance)")
    if "unix-socket" in flags and "port" in flags:
        raise UsageError("cannot specify --unix-socket and --port together")
    if "unix-socket" in flags and "address" in flags:
        raise UsageError("cannot specify --unix-socket and --address together")
    try:
        next_port = int(flags.get("port", POSTGRES_PORT))
    except ValueError:
        raise UsageError('invalid argument "%s" for "-p, --port" flag' % flags["port"])
    listeners = []
    for raw in names:
        name, _, query = raw.partition("?")
        if not NAME_RE.match(name):
            raise UsageError(
                'config error: invalid instance connection name, expected '
                'PROJECT:REGION:INSTANCE (connection name = "%s")' % name)
        options = dict(urllib.parse.parse_qsl(query))
        path = options.get("unix-socket-path")
        directory = options.get("unix-socket", None if "port" in options else flags.get("unix-socket"))
        if path or directory:
            listeners.append({"name": name, "unix": path or os.path.join(directory, name, ".s.PGSQL.5432")})
            continue
        if "port" in options:
            port = int(options["port"])
        else:
            port = next_port
            next_port += 1
        address = options.get("address", flags.get("address", "127.0.0.1"))
        listeners.append({"name": name, "address": address, "port": port})
    return flags, listeners, 2


def plan_v1(argv):
    flags = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, eq, value = arg.lstrip("-").partition("=")
        if key in ("instances", "dir", "credential_file", "token", "ip_address_types",
                   "term_timeout", "max_connections", "log_debug_stdout", "verbose",
                   "use_http_health_check", "health_check_port", "enable_iam_login",
                   "structured_logs", "quiet", "projects", "fuse"):
            if not eq and key in ("instances", "dir", "credential_file", "token",
                                  "ip_address_types", "term_timeout", "max_connections",
                                  "health_check_port", "projects"):
                value = args.pop(0) if args else ""
            flags[key] = value if eq or value else "true"
        else:
            raise UsageError("flag provided but not defined: %s" % arg)
    global STRUCTURED
    STRUCTURED = flags.get("structured_logs", "false") == "true"
    spec = flags.get("instances") or os.environ.get("INSTANCES", "")
    if not spec:
        raise UsageError("no instance selected because none of -projects, -instances, "
                         "-instances_metadata, or -fuse were specified")
    listeners = []
    for item in filter(None, spec.split(",")):
        name, _, target = item.partition("=")
        if not NAME_RE.match(name):
            raise UsageError("invalid instance connection string: %s" % name)
        if not target:
            if "dir" not in flags:
                raise UsageError("-dir must be set when -instances has no =tcp: part (%s)" % item)
            listeners.append({"name": name, "unix": os.path.join(flags["dir"], name, ".s.PGSQL.5432")})
            continue
        kind, _, where = target.partition(":")
        if kind == "unix":
            listeners.append({"name": name, "unix": where})
            continue
        address, _, port = where.rpartition(":")
        listeners.append({"name": name, "address": address or "127.0.0.1", "port": int(port)})
    return flags, listeners, 1


def targets():
    out = {}
    for item in filter(None, os.environ.get("CLOUDSQL_EMULATOR_TARGETS", "").split(",")):
        name, _, where = item.rpartition("=")
        out[name] = where
    return out


def not_found(name):
    return ('failed to get instance metadata (connection name = "%s"): googleapi: Error 404: '
            'The Cloud SQL instance does not exist., instanceDoesNotExist' % name)


def spawn(listener, target):
    host, _, port = target.rpartition(":")
    connect = "TCP:%s:%s,nodelay" % (host, port)
    if "unix" in listener:
        directory, base = os.path.split(listener["unix"])
        os.makedirs(directory, mode=0o777, exist_ok=True)
        os.chmod(directory, 0o777)
        # socat reads ':' as an address separator: name the socket relative to its directory.
        command = ["socat", "UNIX-LISTEN:%s,fork,unlink-early,mode=777" % base, connect]
        return subprocess.Popen(command, cwd=directory)
    command = ["socat", "TCP-LISTEN:%d,bind=%s,fork,reuseaddr,nodelay" % (listener["port"], listener["address"]), connect]
    return subprocess.Popen(command)


def listening(listener):
    if "unix" in listener:
        return os.path.exists(listener["unix"])
    host = listener["address"]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, listener["port"]), timeout=0.2):
            return True
    except OSError:
        return False


def where(listener):
    if "unix" in listener:
        return listener["unix"]
    address = listener["address"]
    if ":" in address:
        address = "[%s]" % address
    return "%s:%d" % (address, listener["port"])


def stop_children():
    for child in CHILDREN:
        if child.poll() is None:
            child.terminate()
    for child in CHILDREN:
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/quitquitquit" and self.server.admin:
            self.answer(200, "ok")
            log("/quitquitquit received request. Shutting down...")
            stop_children()
            os._exit(0)
        if path in ("/startup", "/readiness") and not self.server.admin:
            self.answer(200 if STARTED.is_set() else 503, "ok" if STARTED.is_set() else "error")
        elif path == "/liveness" and not self.server.admin:
            self.answer(200, "ok")
        else:
            self.answer(404, "404 page not found")

    do_POST = do_GET

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serve_http(address, port, admin):
    server = ThreadingHTTPServer((address, port), Health)
    server.admin = admin
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main(argv):
    v1 = os.environ.get("CLOUDSQL_EMULATOR_PROXY_VERSION") == "1" or any(
        a.lstrip("-").split("=")[0] in ("instances", "dir") for a in argv)
    try:
        flags, listeners, version = plan_v1(argv) if v1 else plan_v2(argv)
    except UsageError as error:
        log(str(error), error=True)
        return 1
    exit_on_term = 0 if flags.get("exit-zero-on-sigterm") else 143

    def terminate(signum, _frame):
        log("SIGTERM signal received. Shutting down..." if signum == signal.SIGTERM
            else "SIGINT signal received. Shutting down...")
        stop_children()
        os._exit(exit_on_term if signum == signal.SIGTERM else 130)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    if version == 2 and flags.get("health-check"):
        serve_http(flags.get("http-address", "localhost"), int(flags.get("http-port", 9090)), False)
    if version == 2 and flags.get("quitquitquit"):
        serve_http("localhost", int(flags.get("admin-port", 9091)), True)
    if version == 2:
        if flags.get("credentials-file"):
            log('Authorizing with the credentials file at "%s"' % flags["credentials-file"])
        else:
            log("Authorizing with Application Default Credentials")
    known = targets()
    for listener in listeners:
        if listener["name"] not in known:
            reason = not_found(listener["name"])
            if version == 1:
                log("errors parsing config:\n\tgoogleapi: Error 404: The Cloud SQL instance does "
                    "not exist., instanceDoesNotExist", error=True)
            else:
                log("[%s] could not resolve instance version: refresh error: %s"
                    % (listener["name"], reason), error=True)
                log("The proxy has encountered a terminal error: unable to start: [%s] Unable to "
                    "mount socket: %s" % (listener["name"], reason), error=True)
            stop_children()
            return 1
        CHILDREN.append(spawn(listener, known[listener["name"]]))
    deadline = time.monotonic() + READY_DEADLINE
    pending = list(listeners)
    while pending:
        for child in CHILDREN:
            if child.poll() is not None:
                log("The proxy has encountered a terminal error: unable to start: listener "
                    "exited with code %d" % child.returncode, error=True)
                stop_children()
                return 1
        pending = [l for l in pending if not listening(l)]
        if pending and time.monotonic() > deadline:
            log("The proxy has encountered a terminal error: unable to start: [%s] timed out "
                "opening %s" % (pending[0]["name"], where(pending[0])), error=True)
            stop_children()
            return 1
        if pending:
            time.sleep(0.005)
    for listener in listeners:
        if version == 1:
            log("Listening on %s for %s" % (where(listener), listener["name"]))
        else:
            log("[%s] Listening on %s" % (listener["name"], where(listener)))
    STARTED.set()
    log("Ready for new connections" if version == 1 else
        "The proxy has started successfully and is ready for new connections!")
    while True:
        for child in CHILDREN:
            if child.poll() is not None:
                log("The proxy has encountered a terminal error: listener exited with code %d"
                    % child.returncode, error=True)
                stop_children()
                return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
