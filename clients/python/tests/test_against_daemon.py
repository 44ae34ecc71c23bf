"""The client against the real daemon in sim mode, used as the Django app uses it:
the module's instance, configured from ``WHATSAPP_SERVER_URL`` and
``WHATSAPP_SERVER_API_KEY``, its answers read as the notifier reads them. The
``/sim`` calls stand in for the shop's phone and the network."""

import os
import time

import pytest
import requests

from wa_supervisor_client import whatsapp_baileys_client as client

PATIENT = "300 999 8877"
PATIENT_DIGITS = "573009998877"


class Sim:
    def __init__(self, url):
        self.url = url
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = os.environ["WHATSAPP_SERVER_API_KEY"]

    def post(self, path, body):
        r = self.session.post(f"{self.url}{path}", json=body, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def get(self, path):
        r = self.session.get(f"{self.url}{path}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def inject(self, org, fault):
        self.post(f"/sim/{org}/inject", {"fault": fault})

    def received(self, org):
        return self.get(f"/sim/{org}/sent")["messages"]

    def backups(self, org):
        return self.get(f"/api/backups/{org}")["backups"]


@pytest.fixture
def sim(daemon_url):
    return Sim(daemon_url)


def wait_for(what, check, seconds=20):
    """Polls ``check`` until it answers something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


def wait_status(org, status):
    def reached():
        now = client.get_status(org)
        return now if now and now["status"] == status else None

    return wait_for(f"{org} {status}", reached)


def connected(sim, org, shop_phone):
    """Pairs the org as the shop does: start, QR, scan."""
    assert client.start_session(org)["organization_id"] == str(org)
    wait_status(org, "qr_ready")
    qr = client.get_qr(org)
    assert qr["has_qr"] is True and qr["qr"].startswith("data:image/png;base64,")
    sim.post(f"/sim/{org}/scan", {"phone": shop_phone})
    return wait_status(org, "connected")


def wait_message(message_id, status):
    def reached():
        now = client.get_message(message_id)
        return now if now.get("status") == status else None

    return wait_for(f"{message_id} {status}", reached)


def test_a_reminder_queued_while_reconnecting_is_delivered_once_back(sim):
    org = 101
    connected(sim, org, "573001000101")
    sim.inject(org, "network_down")
    wait_status(org, "reconnecting")

    assert client.verify_and_recover_connection(org) == (True, "573001000101")
    result = client.send_message(org, PATIENT, "Recordatorio: mañana a las 10:00")
    assert result and result.get("success"), result
    assert result["status"] == "queued" and result["phone"] == f"{PATIENT_DIGITS}@s.whatsapp.net"
    assert client.get_status(org)["status"] == "reconnecting"
    assert sim.backups(org) == [], "nothing was cleaned"

    sim.inject(org, "network_up")
    sent = wait_message(result["message_id"], "sent")
    assert sent["attempts"] == 1 and sent["sent_at"]
    assert [m["message_id"] for m in sim.received(org)] == [result["message_id"]]


def test_retries_of_a_send_are_one_message(sim):
    org = 102
    connected(sim, org, "573001000102")
    text = "Su cita quedó confirmada"
    first = client.send_message(org, PATIENT, text)
    retry = client.send_message(org, "3009998877", text)  # spaced or not: one number
    assert first["success"] and retry["success"]
    assert retry["message_id"] == first["message_id"] and retry["duplicate"] is True

    keyed = client.send_message(org, PATIENT, "Recordatorio", idempotency_key="appointment-123-reminder")
    again = client.send_message(org, PATIENT, "Recordatorio", idempotency_key="appointment-123-reminder")
    assert again["message_id"] == keyed["message_id"] != first["message_id"]
    conflict = client.send_message(org, PATIENT, "Otro texto", idempotency_key="appointment-123-reminder")
    assert conflict["success"] is False and conflict["http_status"] == 409
    assert "idempotency_key" in conflict["error"]

    wait_message(keyed["message_id"], "sent")
    assert [m["message_id"] for m in sim.received(org)] == [first["message_id"], keyed["message_id"]]


def test_a_cancelled_message_is_never_sent(sim):
    org = 103
    connected(sim, org, "573001000103")
    sim.inject(org, "network_down")
    wait_status(org, "reconnecting")
    doomed = client.send_message(org, PATIENT, "Cita cancelada de todos modos")
    kept = client.send_message(org, PATIENT, "Se envía")

    cancelled = client.cancel_message(doomed["message_id"])
    assert cancelled["success"] is True and cancelled["status"] == "cancelled"
    sim.inject(org, "network_up")
    wait_message(kept["message_id"], "sent")
    assert [m["text"] for m in sim.received(org)] == ["Se envía"]

    too_late = client.cancel_message(kept["message_id"])
    assert too_late["success"] is False and too_late["http_status"] == 409
    assert too_late["status"] == "sent"


def test_get_message_and_list_messages(sim):
    org = 104
    connected(sim, org, "573001000104")
    sent = client.send_message(org, PATIENT, "hola", idempotency_key="appointment-5-confirmation", ttl_seconds=3600)
    got = wait_message(sent["message_id"], "sent")
    assert got["success"] is True
    assert got["organization_id"] == str(org)
    assert got["phone"] == PATIENT_DIGITS
    assert got["idempotency_key"] == "appointment-5-confirmation"
    for field in ("created_at", "expires_at", "sent_at", "delivered_at", "read_at", "error", "attempts"):
        assert field in got, field

    listed = client.list_messages(organization_id=org, status="sent")
    assert [m["message_id"] for m in listed["messages"]] == [sent["message_id"]]
    unknown = client.get_message("3EB0000000000000000000")
    assert unknown["success"] is False and unknown["http_status"] == 404


def test_an_org_never_started_is_refused_and_not_started(sim):
    org = 105
    result = client.send_message(org, PATIENT, "hola")
    assert result["success"] is False
    assert result["status"] == "not_started" and result["http_status"] == 404
    assert client.get_status(org)["status"] == "not_started", "the send started nothing"


def test_recovery_restarts_a_logged_out_session_and_never_cleans(sim):
    org = 106
    connected(sim, org, "573001000106")
    sim.inject(org, "logged_out")
    wait_status(org, "logged_out")
    backups = sim.backups(org)
    assert len(backups) == 1, "the logout's own backup"

    assert client.verify_and_recover_connection(org) == (False, None)
    assert client.get_status(org)["status"] == "qr_ready", "started again: a QR to scan"
    assert sim.backups(org) == backups, "nothing cleaned"


def test_the_deployed_clients_other_calls(sim):
    org = 107
    assert client.healthcheck() is True
    status = client.get_status(org)
    for field in ("organization_id", "status", "connected", "has_qr", "phone_number"):
        assert field in status
    assert client.get_qr(org) is None, "no session: the daemon's 404, answered as None"
    connected(sim, org, "573001000107")
    sessions = client.list_sessions()
    assert any(s["organization_id"] == str(org) for s in sessions["sessions"])
    budget = client.rate_limit_status(org)
    assert budget["organization_id"] == str(org) and budget["can_connect"] is True
    assert "global_limit" in client.rate_limit_status()
    assert client.force_clean_session(org)["success"] is True
    assert client.get_status(org)["status"] == "not_started"
    assert client.clear_session(org)["success"] is True
    client.start_session(org)
    wait_status(org, "qr_ready")
    assert client.logout(org)["success"] is True
    assert client.logout(org) is None, "no session to log out: None"


# The eight bytes every PNG starts with, then an empty IHDR-less body: enough for
# the daemon, which reads a file's type from its first bytes.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_files_are_queued_and_sent_as_image_and_document(sim):
    org = "py-media"
    connected(sim, org, "573001112233")
    photo = client.send_media(org, PATIENT, PNG, filename="montura.png", caption="Su montura")
    assert photo["success"] is True, photo
    assert photo["mimetype"] == "image/png" and photo["kind"] == "image"
    quote = client.send_media(org, PATIENT, PDF, filename="cotizacion.pdf")
    assert quote["success"] is True, quote
    wait_message(quote["message_id"], "sent")
    kinds = [(m["kind"], m.get("filename")) for m in sim.received(org)]
    assert kinds == [("image", "montura.png"), ("document", "cotizacion.pdf")], kinds
    # The same file to the same patient again is the message already held.
    again = client.send_media(org, PATIENT, PDF, filename="cotizacion.pdf")
    assert again["success"] is True and again["duplicate"] is True
    assert again["message_id"] == quote["message_id"]


def test_a_file_whose_name_lies_about_its_type_is_refused(sim):
    org = "py-media-bad"
    connected(sim, org, "573001112244")
    refused = client.send_media(org, PATIENT, PNG, filename="receta.pdf")
    assert refused["success"] is False and refused["http_status"] == 400, refused


def test_a_number_not_on_whatsapp_is_known_before_a_reminder_is_promised(sim):
    org = "py-check"
    connected(sim, org, "573001112255")
    sim.post(f"/sim/{org}/contacts", {"phone": PATIENT_DIGITS, "on_whatsapp": False})
    absent = client.check_number(org, PATIENT)
    assert absent["success"] is True and absent["on_whatsapp"] is False, absent
    present = client.check_number(org, "300 111 0000")
    assert present["success"] is True and present["on_whatsapp"] is True, present
    stopped = client.check_number("py-never-started", PATIENT)
    assert stopped["success"] is False, stopped
