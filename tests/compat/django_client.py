"""Drives wa-supervisor exactly as the Django appointments app does.

The class below makes the calls the deployed Django client makes, with its field
names, headers and the way it reads each answer (CONTRACT §2). The scenario after
it walks a shop through pairing, a confirmation, a reminder, a cancellation, a
clean-up and a logout. Only the `/sim` calls are ours: they stand in for the phone.

Usage: django_client.py BASE_URL API_KEY
"""

import sys

import requests


class DjangoWhatsAppClient:
    """The shape of the Django side's client: one method per call it makes."""

    def __init__(self, base_url, api_key, timeout=30):
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self.timeout = timeout

    def _post(self, path, payload):
        return requests.post(
            f"{self.base_url}{path}", json=payload, headers=self.headers, timeout=self.timeout
        )

    def _get(self, path, params=None):
        return requests.get(
            f"{self.base_url}{path}", params=params, headers=self.headers, timeout=self.timeout
        )

    def health(self):
        return requests.get(f"{self.base_url}/health", timeout=self.timeout)

    def start_session(self, organization_id):
        return self._post("/api/start-session", {"organization_id": organization_id})

    def get_qr(self, organization_id):
        return self._get(f"/api/qr/{organization_id}")

    def get_status(self, organization_id):
        return self._get(f"/api/status/{organization_id}")

    def send_message(self, organization_id, phone, message):
        return self._post(
            "/api/send-message",
            {"organization_id": organization_id, "phone": phone, "message": message},
        )

    def logout(self, organization_id):
        return self._post("/api/logout", {"organization_id": organization_id})

    def force_clean_session(self, organization_id):
        return self._post("/api/force-clean-session", {"organization_id": organization_id})

    def clear_session(self, organization_id):
        return self._post("/api/clear-session", {"organization_id": organization_id})

    def list_sessions(self):
        return self._get("/api/sessions")

    def rate_limit_status(self, organization_id=None):
        params = {"organization_id": organization_id} if organization_id is not None else None
        return self._get("/api/rate-limit-status", params)


CHECKS = {"passed": 0, "failed": 0}


def check(name, condition, detail=""):
    if condition:
        CHECKS["passed"] += 1
        print(f"ok     {name}")
    else:
        CHECKS["failed"] += 1
        print(f"FAILED {name} {detail}")


def wait_status(client, org, wanted, attempts=500):
    import time

    body = None
    for _ in range(attempts):
        body = client.get_status(org).json()
        if body["status"] == wanted:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{org} never reached {wanted}: {body}")


def main(base_url, api_key):
    client = DjangoWhatsAppClient(base_url, api_key)
    sim = requests.Session()
    sim.headers.update({"X-API-Key": api_key})
    org = 15  # Django passes the organization's integer primary key.

    r = client.health()
    check("health answers without a key", r.status_code == 200 and r.json()["status"] == "ok", r.text)

    r = requests.post(f"{base_url}/api/start-session", json={"organization_id": org}, timeout=5)
    check("a missing key is 401 unauthorized", r.status_code == 401 and r.json() == {"error": "unauthorized"}, r.text)

    r = client.get_status(org)
    body = r.json()
    check("unknown org status is not_started", r.status_code == 200 and body["status"] == "not_started", r.text)
    for field in ("organization_id", "status", "connected", "has_qr", "phone_number"):
        check(f"status has {field}", field in body, r.text)

    r = client.start_session(org)
    body = r.json()
    check("start-session 200", r.status_code == 200, r.text)
    for field in ("message", "organization_id", "status"):
        check(f"start-session has {field}", field in body, r.text)

    wait_status(client, org, "qr_ready")
    r = client.get_qr(org)
    body = r.json()
    check("qr 200", r.status_code == 200, r.text)
    check("qr is a PNG data URL", str(body.get("qr", "")).startswith("data:image/png;base64,"), r.text[:120])
    check("qr has has_qr", body.get("has_qr") is True, r.text[:120])
    check("qr has status", body.get("status") == "qr_ready", r.text[:120])

    r = client.get_qr(999)
    check("qr of an org without session is 404", r.status_code == 404 and "error" in r.json(), r.text)

    r = client.send_message(org, "3001112233", "Hola")
    check("send before pairing is 400 with status", r.status_code == 400 and r.json().get("status") == "qr_ready", r.text)

    sim.post(f"{base_url}/sim/{org}/scan", json={"phone": "573001234567"}, timeout=5)
    body = wait_status(client, org, "connected")
    check("connected with phone_number", body["connected"] is True and body["phone_number"] == "573001234567", str(body))

    for kind, text in (
        ("confirmation", "Óptica Central: su cita quedó confirmada para el 24/11 a las 10:00."),
        ("reminder", "Recordatorio: mañana tiene cita de optometría a las 10:00."),
        ("cancellation", "Su cita del 24/11 fue cancelada. Responda para reprogramar."),
    ):
        r = client.send_message(org, "300 111 2233", text)
        body = r.json()
        check(f"{kind} sent", r.status_code == 200 and body.get("success") is True, r.text)
        check(f"{kind} phone jid", body.get("phone") == "573001112233@s.whatsapp.net", r.text)
        check(f"{kind} has message_id and message", bool(body.get("message_id")) and "message" in body, r.text)

    sent = sim.get(f"{base_url}/sim/{org}/sent", timeout=5).json()["messages"]
    check("the phone sent all three", [m["to"] for m in sent] == ["573001112233"] * 3, str(sent))

    r = client.send_message(org, "", "x")
    check("missing phone is 400 JSON", r.status_code == 400 and "error" in r.json(), r.text)
    r = client._post("/api/send-message", {"organization_id": org, "phone": "3001112233"})
    check("missing message is 400 JSON", r.status_code == 400 and "error" in r.json(), r.text)

    r = client.list_sessions()
    body = r.json()
    check("sessions lists the org", r.status_code == 200 and body["total"] == 1, r.text)
    entry = body["sessions"][0]
    for field in ("organization_id", "status", "connected", "has_qr"):
        check(f"sessions entry has {field}", field in entry, r.text)

    r = client.rate_limit_status(org)
    body = r.json()
    for field in (
        "global_attempts_last_hour", "global_limit", "global_blocked", "organization_id",
        "can_connect", "block_reason", "wait_time_minutes", "attempts_last_24h", "daily_limit", "block_until",
    ):
        check(f"rate-limit-status has {field}", field in body, r.text)
    r = client.rate_limit_status()
    body = r.json()
    check("rate-limit-status overall lists organizations", isinstance(body.get("organizations"), list), r.text)

    # The deployed client clears a session that looks stuck; both routes answer alike.
    r = client.clear_session(org)
    check("clear-session succeeds", r.status_code == 200 and r.json().get("success") is True, r.text)
    check("after clear-session the org is not_started", client.get_status(org).json()["status"] == "not_started")
    r = client.force_clean_session(org)
    check("force-clean-session on a clean org succeeds", r.status_code == 200 and r.json().get("success") is True, r.text)

    client.start_session(str(org))
    wait_status(client, org, "qr_ready")
    r = client.logout(org)
    check("logout succeeds", r.status_code == 200 and r.json().get("success") is True, r.text)
    r = client.logout(org)
    check("logout without session is 404", r.status_code == 404 and "error" in r.json(), r.text)

    print(f"{CHECKS['passed']} passed, {CHECKS['failed']} failed")
    return 1 if CHECKS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
