"""The client's own rules, against a scripted stand-in for the daemon that records
every request: it never cleans a session by itself, starts only stopped ones, keys
every message, and answers in the deployed client's shapes."""

import datetime
import socket
import sys
import types

import pytest

from conftest import SHOP_PHONE, STATUSES
from wa_supervisor_client import (
    HEALTHY,
    RESTARTABLE,
    WhatsAppBaileysClient,
    derive_idempotency_key,
    whatsapp_baileys_client,
)

WIPES = ("/api/force-clean-session", "/api/clear-session", "/api/logout")


def client_for(fake):
    return WhatsAppBaileysClient(base_url=fake.url, api_key="k", recovery_wait=0.5)


@pytest.mark.parametrize("status", STATUSES)
def test_no_status_ever_makes_the_client_clean_a_session(fake_daemon, status):
    fake_daemon.statuses["7"] = status
    client = client_for(fake_daemon)

    result = client.send_message(7, "300 999 8877", "Recordatorio")
    connected, phone = client.verify_and_recover_connection(7)

    for path in WIPES:
        assert fake_daemon.calls(path=path) == [], f"{status}: {path}"
    starts = fake_daemon.calls("POST", "/api/start-session")
    if status in RESTARTABLE:
        assert starts, f"a {status} session is started again"
    else:
        assert starts == [], f"a {status} session is left to the daemon"
    after = fake_daemon.after_start.get(status, status) if status in RESTARTABLE else status
    assert connected is (after in HEALTHY)
    assert phone == (SHOP_PHONE if after in HEALTHY else None)
    if status == "not_started":
        # Nowhere to send from: the daemon's 404, and the send starts nothing.
        assert result["success"] is False and result["status"] == "not_started"
    else:
        assert result["success"] is True, result


def test_reconnecting_is_healthy_and_left_alone(fake_daemon):
    fake_daemon.statuses["3"] = "reconnecting"
    client = client_for(fake_daemon)
    assert client.verify_and_recover_connection(3) == (True, SHOP_PHONE)
    assert client.send_message(3, "3009998877", "hola")["success"] is True
    assert [r for r in fake_daemon.requests if r[0] == "POST" and r[1] != "/api/messages"] == []


def test_every_message_carries_a_stable_idempotency_key(fake_daemon):
    fake_daemon.statuses["2"] = "connected"
    client = client_for(fake_daemon)

    first = client.send_message(2, "300 999 8877", "Su cita es mañana")
    retry = client.send_message(2, "3009998877", "Su cita es mañana")
    keyed = client.send_message(2, "3009998877", "Su cita es mañana", idempotency_key="appointment-123-reminder")

    assert first["success"] and first["duplicate"] is False
    assert retry["message_id"] == first["message_id"] and retry["duplicate"] is True
    assert keyed["message_id"] != first["message_id"]
    assert keyed["idempotency_key"] == "appointment-123-reminder"
    assert first["phone"] == "3009998877@s.whatsapp.net"
    sent = [r[2] for r in fake_daemon.calls("POST", "/api/messages")]
    assert sent[0]["idempotency_key"] == sent[1]["idempotency_key"]
    assert sent[0]["organization_id"] == "2"


def test_derived_keys_change_with_org_phone_text_and_day():
    day = datetime.date(2026, 11, 23)
    key = derive_idempotency_key(2, "300 999 8877", "hola", day)
    assert key == derive_idempotency_key("2", "3009998877", "hola", day)
    for other in (
        derive_idempotency_key(3, "3009998877", "hola", day),
        derive_idempotency_key(2, "3009998878", "hola", day),
        derive_idempotency_key(2, "3009998877", "hola!", day),
        derive_idempotency_key(2, "3009998877", "hola", day + datetime.timedelta(days=1)),
    ):
        assert other != key
    assert len(key) <= 128 and key.isprintable()


def test_auto_recover_false_positional_as_the_deployed_signature(fake_daemon):
    fake_daemon.statuses["4"] = "disconnected"
    client = client_for(fake_daemon)
    assert client.send_message(4, "3009998877", "hola", False)["success"] is True
    assert fake_daemon.calls("POST", "/api/start-session") == []
    assert fake_daemon.calls("GET") == [], "no status look-up either"

    client.auto_recovery_enabled = False
    assert client.verify_and_recover_connection(4) == (False, None)
    assert fake_daemon.calls("POST", "/api/start-session") == []


def test_a_refused_message_answers_success_false_with_the_daemons_error(fake_daemon):
    client = client_for(fake_daemon)
    result = client.send_message(99, "3009998877", "hola")
    assert result["success"] is False
    assert result["http_status"] == 404
    assert result["status"] == "not_started"
    assert result["error"] == "no session for this organization"
    # The deployed callers read it like this.
    assert not (result and result.get("success"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_daemon_that_does_not_answer():
    client = WhatsAppBaileysClient(base_url=f"http://127.0.0.1:{free_port()}", api_key="k", timeout=2)
    assert client.healthcheck() is False
    assert client.get_status(2) is None
    assert client.start_session(2) is None
    assert client.verify_and_recover_connection(2) == (False, None)
    sent = client.send_message(2, "3009998877", "hola")
    assert sent["success"] is False and sent["error"]
    got = client.get_message("3EB0AA")
    assert got["success"] is False and got["http_status"] is None


def test_settings_come_from_django_then_the_environment(monkeypatch, fake_daemon):
    monkeypatch.delenv("WHATSAPP_SERVER_URL", raising=False)
    monkeypatch.delenv("WHATSAPP_SERVER_API_KEY", raising=False)
    client = WhatsAppBaileysClient()
    assert client.base_url == "http://localhost:3000"

    monkeypatch.setenv("WHATSAPP_SERVER_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("WHATSAPP_SERVER_API_KEY", "from-env")
    assert (client.base_url, client.api_key) == ("http://127.0.0.1:1", "from-env")

    # Django's settings win over the environment, as in the deployed client.
    django = types.ModuleType("django")
    conf = types.ModuleType("django.conf")
    conf.settings = types.SimpleNamespace(WHATSAPP_SERVER_URL=fake_daemon.url, WHATSAPP_SERVER_API_KEY="from-django")
    django.conf = conf
    monkeypatch.setitem(sys.modules, "django", django)
    monkeypatch.setitem(sys.modules, "django.conf", conf)
    assert (client.base_url, client.api_key) == (fake_daemon.url, "from-django")
    assert whatsapp_baileys_client.healthcheck() is True, "the module's instance reads them too"
    assert client.headers["X-API-Key"] == "from-django"

    explicit = WhatsAppBaileysClient(base_url="http://example.invalid", api_key="given")
    assert (explicit.base_url, explicit.api_key) == ("http://example.invalid", "given")


def test_ids_from_callers_stay_in_their_path_segment(fake_daemon):
    client = client_for(fake_daemon)
    client.get_message("../sessions")
    client.get_status("2/../../health")
    paths = [r[1] for r in fake_daemon.requests]
    assert paths == ["/api/messages/..%2Fsessions", "/api/status/2%2F..%2F..%2Fhealth"]
