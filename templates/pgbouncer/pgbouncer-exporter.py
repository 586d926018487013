#!/usr/bin/python3
"""PgBouncer metrics for Prometheus, installed by dpgc.

Why not Debian's prometheus-pgbouncer-exporter: version 1.7 crashes against
PgBouncer 1.18 on a renamed SHOW STATS column. This exporter maps columns to
metric names generically, so a column PgBouncer adds or renames changes one
metric name and never stops the exporter. It queries the admin console on
every scrape (no cache, no background thread): a scrape is the measurement.

Configuration comes from the environment (passwords only from the
environment, set by the service manager from a mode 0600 file):
  PGBOUNCER_EXPORTER_LISTEN  address:port to serve /metrics on
  PGHOST PGPORT PGUSER PGPASSWORD  the admin console (database `pgbouncer`)
  PGBOUNCER_EXPORTER_TLS_CERT, _TLS_KEY  serve HTTPS (TLS 1.2 at least) with these
  PGBOUNCER_EXPORTER_USERS_FILE  require basic auth of the users in this file, one
      `user:rounds:salt-hex:pbkdf2-sha256-hex` a line (the host's web config's users;
      Python's standard library has no bcrypt)
Like the exporter-toolkit ones, it reads the certificate again when its file
changes, and the users file on every request (re-parsed when it changed), so
neither a renewed certificate nor a rotated password needs a restart; while
dpgc rotates the password the file holds the old user and the new one.
"""
import base64
import hashlib
import hmac
import os
import re
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

# Columns that are labels, per SHOW command; every other numeric column is a gauge/counter.
LABELS = {
    "POOLS": ("database", "user"),
    "STATS": ("database",),
    "DATABASES": ("name",),
}
# SHOW STATS totals only grow: expose them as counters so rate() is meaningful.
COUNTER_PREFIX = "total_"
# Durations PgBouncer reports in microseconds, renamed to seconds.
MICROSECONDS = re.compile(r"_(time|wait_time|xact_time|query_time)$")
# Settings worth alerting on (SHOW CONFIG values are text; these are integers).
CONFIG_KEYS = ("max_client_conn", "default_pool_size", "reserve_pool_size", "max_db_connections", "max_user_connections")

LOCK = threading.Lock()


def connect():
    conn = psycopg2.connect(dbname="pgbouncer", connect_timeout=5)
    # The admin console has no transactions: BEGIN would be refused.
    conn.autocommit = True
    return conn


def esc(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def show(cur, what):
    cur.execute("SHOW " + what)
    cols = [d[0] for d in cur.description]
    return cols, cur.fetchall()


def collect(cur, out):
    for what, labels in LABELS.items():
        cols, rows = show(cur, what)
        seen = set()
        for row in rows:
            rec = dict(zip(cols, row))
            lab = ",".join('%s="%s"' % (l, esc(rec.get(l, ""))) for l in labels)
            if what == "POOLS" and "maxwait" in rec:
                # Seconds and the microsecond remainder in two columns: one gauge in seconds.
                rec["maxwait_seconds"] = (number(rec.pop("maxwait")) or 0) + (number(rec.pop("maxwait_us", 0)) or 0) / 1e6
            for col, val in rec.items():
                if col in labels:
                    continue
                n = number(val)
                if n is None:
                    continue
                name = "pgbouncer_%s_%s" % (what.lower(), col)
                if MICROSECONDS.search(col):
                    name, n = name + "_seconds", n / 1e6
                kind = "gauge"
                if what == "STATS" and col.startswith(COUNTER_PREFIX):
                    name, kind = name + "_total", "counter"
                if name not in seen:
                    seen.add(name)
                    out.append("# TYPE %s %s" % (name, kind))
                out.append("%s{%s} %s" % (name, lab, repr(n)))
    cols, rows = show(cur, "CONFIG")
    for row in rows:
        rec = dict(zip(cols, row))
        if rec.get("key") in CONFIG_KEYS:
            n = number(rec.get("value"))
            if n is not None:
                out.append("# TYPE pgbouncer_config_%s gauge" % rec["key"])
                out.append("pgbouncer_config_%s %s" % (rec["key"], repr(n)))
    cols, rows = show(cur, "LISTS")
    out.append("# TYPE pgbouncer_lists gauge")
    for row in rows:
        rec = dict(zip(cols, row))
        out.append('pgbouncer_lists{list="%s"} %s' % (esc(rec["list"]), repr(float(rec["items"]))))


def scrape():
    out = []
    up = 0
    err = ""
    try:
        conn = connect()
        try:
            with conn.cursor() as cur:
                collect(cur, out)
            up = 1
        finally:
            conn.close()
    except Exception as e:  # noqa: BLE001 - any failure is "pgbouncer down" for this scrape
        out = []
        err = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    head = ["# HELP pgbouncer_up Whether the last query of PgBouncer's admin console succeeded.", "# TYPE pgbouncer_up gauge", "pgbouncer_up %d" % up]
    return "\n".join(head + out) + "\n", err


USERS = {"stamp": None, "users": {}, "verified": {}}
USERS_LOCK = threading.Lock()


def users(path):
    """The users file as it is now: {user: (rounds, salt, digest)}; re-read when its inode, size or time changed."""
    st = os.stat(path)
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    with USERS_LOCK:
        if stamp != USERS["stamp"]:
            parsed = {}
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 4:
                        parsed[parts[0]] = (int(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3]))
            # Verdicts are per file version: a user dropped from the file is refused at once.
            USERS.update(stamp=stamp, users=parsed, verified={})
        return USERS["users"], USERS["verified"]


def authorized(header):
    path = os.environ.get("PGBOUNCER_EXPORTER_USERS_FILE")
    if not path:
        return True
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        known, verified = users(path)
    except (ValueError, OSError):
        return False  # a malformed header, or no users file: nobody gets in
    entry = known.get(user)
    if entry is None:
        return False
    # PBKDF2 costs tens of milliseconds: each (user, password) pair is checked once per file version.
    key = hashlib.sha256(header.encode()).digest()
    ok = verified.get(key)
    if ok is None:
        rounds, salt, digest = entry
        ok = hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds), digest)
        with USERS_LOCK:
            if len(verified) >= 64:
                verified.clear()
            verified[key] = ok
    return ok


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        if not authorized(self.headers.get("Authorization")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="dpgc"')
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"Unauthorized\n")
            return
        if self.path.split("?")[0] != "/metrics":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"see /metrics\n")
            return
        with LOCK:
            body, err = scrape()
        if err:
            sys.stderr.write("scrape failed: %s\n" % err)
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, cert, key):
        super().__init__(address, Handler)
        self.cert, self.key = cert, key
        self.ctx, self.stamp = None, None
        self.ctx_lock = threading.Lock()

    def context(self):
        stamp = (os.stat(self.cert).st_mtime_ns, os.stat(self.key).st_mtime_ns)
        with self.ctx_lock:
            if stamp != self.stamp:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(self.cert, self.key)
                self.ctx, self.stamp = ctx, stamp
            return self.ctx

    def finish_request(self, request, client_address):
        # The handshake in the connection's own thread: a slow or plaintext client holds up no other.
        if not self.cert:
            return super().finish_request(request, client_address)
        request.settimeout(10)
        conn = self.context().wrap_socket(request, server_side=True)
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request, client_address):
        # One line, not a traceback: a plaintext client or a failed handshake is not the exporter's fault.
        sys.stderr.write("%s: %s\n" % (client_address[0], sys.exc_info()[1]))


def main():
    host, _, port = os.environ["PGBOUNCER_EXPORTER_LISTEN"].rpartition(":")
    cert, key = os.environ.get("PGBOUNCER_EXPORTER_TLS_CERT"), os.environ.get("PGBOUNCER_EXPORTER_TLS_KEY")
    server = Server((host, int(port)), cert, key)
    if cert:
        server.context()  # a certificate it cannot load stops it at start, where the service manager sees it
    sys.stderr.write("pgbouncer-exporter listening on %s:%s (%s)\n" % (host, port, "TLS" if cert else "plaintext"))
    server.serve_forever()


if __name__ == "__main__":
    main()
