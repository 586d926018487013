#!/usr/bin/python3
"""The lab's alert receiver, installed by dpgc: a webhook endpoint for Alertmanager.

In the lab there is nobody to page, so this stands in for the on-call person's
endpoint: every notification POSTed to it (Alertmanager's webhook JSON) is
appended, one JSON document per line, to a file that tests and operators read
(`dpgc` integration tests assert that a stopped exporter's alert arrives here).
GET answers 200 so a port probe and a curl both see it alive.

Arguments: address port file
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADDRESS, PORT, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Notifications are small; refuse anything that is not one.
MAX_BODY = 1 << 20
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self.send_error(413 if length > MAX_BODY else 411)
            return
        body = self.rfile.read(length)
        try:
            doc = json.loads(body)
        except ValueError:
            self.send_error(400, "not JSON")
            return
        line = json.dumps({"path": self.path, "notification": doc}, separators=(",", ":")) + "\n"
        # One writer at a time, one whole line per write: readers never see half a notification.
        with LOCK, open(OUT, "a", encoding="utf-8") as f:
            f.write(line)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"dpgc lab alert receiver\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


ThreadingHTTPServer((ADDRESS, PORT), Handler).serve_forever()
