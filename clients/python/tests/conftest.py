"""Fixtures: a scripted stand-in for the daemon that records every request (for
the client's own rules), and the real daemon when a test run is given one."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

#: Every session status of the daemon (CONTRACT §3).
STATUSES = [
    "not_started",
    "connecting",
    "qr_ready",
    "connected",
    "reconnecting",
    "disconnected",
    "logged_out",
    "conflict",
    "number_in_use",
    "banned",
    "client_outdated",
    "quarantined",
    "blocked",
]

SHOP_PHONE = "573001234567"


class FakeDaemon:
    """Answers the routes the client calls from a table of org statuses, and keeps
    every request as ``(method, path, json body)``."""

    def __init__(self):
        self.statuses = {}
        #: What ``start-session`` turns each status into.
        self.after_start = {"not_started": "qr_ready", "disconnected": "connected", "logged_out": "qr_ready"}
        self.requests = []
        self.messages = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = urlparse(self.path).path
                with fake._lock:
                    fake.requests.append((method, path, body))
                    self._answer(*fake.route(method, path, body))

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def status_of(self, org):
        status = self.statuses.get(org, "not_started")
        phone = SHOP_PHONE if status in ("connected", "reconnecting") else None
        return {
            "organization_id": org,
            "status": status,
            "connected": status == "connected",
            "has_qr": status == "qr_ready",
            "phone_number": phone,
        }

    def route(self, method, path, body):
        if path == "/health":
            return 200, {"status": "ok", "sessions": len(self.statuses)}
        if method == "GET" and path.startswith("/api/status/"):
            return 200, self.status_of(path.rsplit("/", 1)[1])
        if path == "/api/start-session":
            org = body["organization_id"]
            now = self.statuses.get(org, "not_started")
            self.statuses[org] = self.after_start.get(now, now)
            return 200, {"message": "Session started", "organization_id": org, "status": self.statuses[org]}
        if path in ("/api/force-clean-session", "/api/clear-session", "/api/logout"):
            return 200, {"success": True, "message": "done"}
        if path == "/api/messages" and method == "POST":
            org = body["organization_id"]
            if self.statuses.get(org, "not_started") == "not_started":
                return 404, {"error": "no session for this organization", "status": "not_started", "hint": "start"}
            key = (org, body["idempotency_key"])
            duplicate = key in self.messages
            if not duplicate:
                self.messages[key] = f"3EB0{len(self.messages):018X}"
            answer = {
                "message_id": self.messages[key],
                "organization_id": org,
                "phone": "".join(c for c in body["phone"] if c.isdigit()),
                "status": "queued",
                "idempotency_key": body["idempotency_key"],
                "duplicate": duplicate,
            }
            return (200 if duplicate else 202), answer
        return 404, {"error": "not found"}

    def calls(self, method=None, path=None):
        with self._lock:
            return [r for r in self.requests if (method is None or r[0] == method) and (path is None or r[1] == path)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_daemon():
    fake = FakeDaemon()
    yield fake
    fake.close()


@pytest.fixture
def daemon_url():
    """The real daemon in sim mode, started by ``tests/python_client.rs``; the
    client reads it from ``WHATSAPP_SERVER_URL`` as the Django app does."""
    url = os.environ.get("WHATSAPP_SERVER_URL")
    if not url or not os.environ.get("WA_SUPERVISOR_SIM"):
        pytest.skip("needs a daemon in sim mode: run through tests/python_client.rs")
    return url.rstrip("/")
