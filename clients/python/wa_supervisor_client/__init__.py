"""The Django app's WhatsApp client for wa-supervisor.

A drop-in for the deployed ``WhatsAppBaileysClient`` (``apps/appointments/
whatsapp_baileys_client.py``): the same class name, the same methods with the same
arguments, and the same answers, so the views, the notifier and the campaign sender
keep calling it as they do. What changes is what ``send_message`` does:

* It queues the message in the daemon's outbox (``POST /api/messages``) instead of
  sending it on the spot. The daemon keeps it on disk and sends it as soon as the
  shop's session is connected (after a reconnect, a rescan or a restart of the
  daemon), once, in order; ``success`` means "accepted for delivery".
* Every message carries an idempotency key: the caller's (``appointment-123-
  reminder``), or one derived from the org, the phone, the text and the day, so a
  retried Django task never sends a reminder twice.
* A session that is ``reconnecting`` is healthy: the daemon is already bringing it
  back. Nothing here ever calls ``force-clean-session`` or ``clear-session`` by
  itself (that throws a paired session away and costs the shop a QR rescan); only
  an explicit call of those methods does. ``verify_and_recover_connection`` only
  asks the daemon to start a session that is stopped.

Answers, as the deployed client gives them: the parsed JSON of a successful answer,
``None`` when the request failed (no answer, or an error status), ``healthcheck()``
a bool, ``verify_and_recover_connection()`` a tuple ``(is_connected, phone_number)``.
``send_message`` answers a dict either way: with ``success: True`` and the
``message_id``, or ``success: False`` and the daemon's ``error`` (the deployed one
answered ``None`` there, which its callers test with ``result and
result.get('success')``, and which the campaign sender read ``.get('error')`` from).
The outbox's own calls (``get_message``, ``cancel_message``, ``list_messages``)
answer a dict with ``success`` and, on failure, ``error`` and ``http_status``;
``send_media`` and ``check_number`` will answer alike.

Configuration, as the deployed client: ``WHATSAPP_SERVER_URL`` (default
``http://localhost:3000``) and ``WHATSAPP_SERVER_API_KEY`` from Django's settings,
else from the environment, unless given to the constructor. They are read at each
call, so Django's ``override_settings`` works in tests.

Patients' numbers and message texts are never logged.
"""

import datetime
import hashlib
import logging
import os
import re
import time
from urllib.parse import quote

import requests

__all__ = [
    "WhatsAppBaileysClient",
    "derive_idempotency_key",
    "whatsapp_baileys_client",
]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:3000"

#: Statuses in which the session is serving or coming back by itself.
HEALTHY = frozenset({"connected", "reconnecting"})
#: Statuses that a ``start-session`` may bring back (a resume from the stored
#: credentials, or a new QR for the shop to scan); it never wipes anything.
RESTARTABLE = frozenset({"not_started", "disconnected", "logged_out"})


def derive_idempotency_key(organization_id, phone, message, day=None):
    """A stable idempotency key for a message sent without one.

    The same org, phone (its digits), text and day give the same key, so the daemon
    accepts a retried send as the message it already holds. ``day`` defaults to
    today in the process's time zone (Django sets it from ``TIME_ZONE``).
    """
    day = day or datetime.date.today()
    digits = re.sub(r"\D", "", str(phone))
    material = "\x1f".join([str(organization_id), digits, str(message), day.isoformat()])
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()
    return f"auto-{day.isoformat()}-{digest[:40]}"


def _setting(name):
    """``name`` from Django's settings when Django is set up, else the environment."""
    try:
        from django.conf import settings

        value = getattr(settings, name, None)
        if value:
            return value
    except Exception:  # Django missing or not configured: the environment decides.
        pass
    return os.environ.get(name)


def _path_part(value):
    """A value for one segment of a URL path (so it cannot reach another route)."""
    return quote(str(value), safe="")


class WhatsAppBaileysClient:
    """Talks to wa-supervisor over HTTP, as the Django app's WhatsApp client."""

    def __init__(self, base_url=None, api_key=None, timeout=10, recovery_wait=3.0):
        self._base_url = base_url
        self._api_key = api_key
        self.timeout = timeout
        #: How long ``verify_and_recover_connection`` waits for a restarted session.
        self.recovery_wait = recovery_wait
        #: When False, ``send_message`` and ``verify_and_recover_connection`` never
        #: start a stopped session (as the deployed client's switch).
        self.auto_recovery_enabled = True

    # ---- configuration -------------------------------------------------------

    @property
    def base_url(self):
        return (self._base_url or _setting("WHATSAPP_SERVER_URL") or DEFAULT_URL).rstrip("/")

    @property
    def api_key(self):
        return self._api_key or _setting("WHATSAPP_SERVER_API_KEY") or ""

    @property
    def headers(self):
        return {"Content-Type": "application/json", "X-API-Key": self.api_key}

    # ---- transport -----------------------------------------------------------

    def _call(self, method, endpoint, data=None, params=None):
        """One request: ``(status_code, parsed JSON or None)``; ``(None, error)``
        when no answer came."""
        try:
            response = requests.request(
                method,
                f"{self.base_url}{endpoint}",
                json=data,
                params=params,
                headers=self.headers,
                timeout=self.timeout,
            )
        except requests.exceptions.RequestException as e:
            logger.error("wa-supervisor did not answer %s %s: %s", method, endpoint, e)
            return None, str(e)
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    def _make_request(self, method, endpoint, data=None):
        """The deployed client's helper: the JSON of a 2xx answer, else ``None``."""
        code, body = self._call(method, endpoint, data)
        if code is None:
            return None
        if not 200 <= code < 300:
            error = body.get("error") if isinstance(body, dict) else None
            logger.error("wa-supervisor answered %s to %s %s: %s", code, method, endpoint, error)
            return None
        return body

    @staticmethod
    def _outcome(code, body):
        """A dict with ``success``, for the outbox's calls."""
        if code is not None and 200 <= code < 300 and isinstance(body, dict):
            return dict(body, success=True)
        if code is None:
            return {"success": False, "error": f"wa-supervisor did not answer: {body}", "http_status": None}
        failure = {"success": False, "http_status": code}
        if isinstance(body, dict):
            failure["error"] = body.get("error") or f"HTTP {code}"
            for field in ("status", "hint"):
                if field in body:
                    failure[field] = body[field]
        else:
            failure["error"] = f"HTTP {code}"
        return failure

    # ---- the deployed client's calls -----------------------------------------

    def start_session(self, organization_id):
        """Starts (or resumes, never wipes) the org's session."""
        return self._make_request("POST", "/api/start-session", {"organization_id": str(organization_id)})

    def get_qr(self, organization_id):
        return self._make_request("GET", f"/api/qr/{_path_part(organization_id)}")

    def get_status(self, organization_id):
        return self._make_request("GET", f"/api/status/{_path_part(organization_id)}")

    def force_clean_session(self, organization_id):
        """Backs up and wipes the org's session: the shop must scan a QR again.
        Only ever called by the caller, never by this client itself."""
        result = self._make_request(
            "POST", "/api/force-clean-session", {"organization_id": str(organization_id)}
        )
        logger.info("session clean requested for org %s: %s", organization_id, bool(result))
        return result

    def clear_session(self, organization_id):
        """Same as ``force_clean_session`` (the daemon's alias route)."""
        return self._make_request("POST", "/api/clear-session", {"organization_id": str(organization_id)})

    def logout(self, organization_id):
        return self._make_request("POST", "/api/logout", {"organization_id": str(organization_id)})

    def list_sessions(self):
        return self._make_request("GET", "/api/sessions")

    def rate_limit_status(self, organization_id=None):
        """The connection-attempt budget, the whole daemon's or with one org's."""
        endpoint = "/api/rate-limit-status"
        if organization_id is not None:
            endpoint += f"?organization_id={quote(str(organization_id), safe='')}"
        return self._make_request("GET", endpoint)

    def healthcheck(self):
        """Whether the daemon answers ``/health``."""
        try:
            return requests.get(f"{self.base_url}/health", timeout=5).status_code == 200
        except requests.exceptions.RequestException:
            return False

    def verify_and_recover_connection(self, organization_id, max_retries=2):
        """``(is_connected, phone_number or None)``.

        ``connected`` and ``reconnecting`` are healthy (the daemon heals by itself).
        A stopped session (``not_started``, ``disconnected``, ``logged_out``) is
        started again and given ``recovery_wait`` seconds to come up; one that then
        shows a QR needs the shop to scan it. Nothing is ever cleaned or wiped.
        ``max_retries`` bounds the start requests that get no answer.
        """
        status = self.get_status(organization_id)
        if not status:
            logger.warning("no status for org %s", organization_id)
            return False, None
        current = status.get("status")
        phone = status.get("phone_number") or status.get("phone")
        if current in HEALTHY:
            return True, phone
        if not (self.auto_recovery_enabled and current in RESTARTABLE):
            logger.warning("WhatsApp not connected for org %s (status %s)", organization_id, current)
            return False, None
        for attempt in range(max(1, max_retries)):
            if self.start_session(organization_id) is not None:
                return self._wait_until_healthy(organization_id)
            logger.warning("starting the session of org %s failed (attempt %s)", organization_id, attempt + 1)
        return False, None

    def _wait_until_healthy(self, organization_id):
        deadline = time.monotonic() + self.recovery_wait
        while True:
            status = self.get_status(organization_id) or {}
            current = status.get("status")
            if current in HEALTHY:
                return True, status.get("phone_number")
            if current == "qr_ready" or time.monotonic() >= deadline:
                logger.warning("org %s is %s: the shop must scan its QR or wait", organization_id, current)
                return False, None
            time.sleep(0.2)

    def send_message(
        self,
        organization_id,
        phone,
        message,
        auto_recover=True,
        *,
        idempotency_key=None,
        ttl_seconds=None,
        expires_at=None,
    ):
        """Queues a text for the org's outbox; see the module's docs for the answer.

        ``idempotency_key``: the caller's key (e.g. ``appointment-123-reminder``),
        else :func:`derive_idempotency_key`. ``ttl_seconds`` or ``expires_at`` (a
        ``datetime`` or an RFC 3339 string): when the message is no longer worth
        sending (the daemon's default: a day). With ``auto_recover`` a session that
        is stopped is started again (never cleaned), so the message can go out.
        """
        key = idempotency_key or derive_idempotency_key(organization_id, phone, message)
        payload = {
            "organization_id": str(organization_id),
            "phone": str(phone),
            "message": message,
            "idempotency_key": key,
        }
        if ttl_seconds is not None:
            payload["ttl_seconds"] = int(ttl_seconds)
        if expires_at is not None:
            payload["expires_at"] = expires_at.isoformat() if hasattr(expires_at, "isoformat") else str(expires_at)
        code, body = self._call("POST", "/api/messages", payload)
        if code not in (200, 202) or not isinstance(body, dict):
            failure = self._outcome(code, body)
            logger.error(
                "WhatsApp message for org %s not accepted (HTTP %s): %s",
                organization_id,
                failure["http_status"],
                failure["error"],
            )
            return failure
        duplicate = bool(body.get("duplicate"))
        logger.info(
            "WhatsApp message %s %s for org %s",
            body.get("message_id"),
            "already held" if duplicate else "queued",
            organization_id,
        )
        if auto_recover and self.auto_recovery_enabled:
            self._start_if_stopped(organization_id)
        return {
            "success": True,
            "message": "Message already accepted" if duplicate else "Message accepted for delivery",
            "phone": f"{body.get('phone')}@s.whatsapp.net",
            "message_id": body.get("message_id"),
            "status": body.get("status"),
            "duplicate": duplicate,
            "idempotency_key": body.get("idempotency_key"),
            "organization_id": body.get("organization_id"),
        }

    def _start_if_stopped(self, organization_id):
        """Starts the org's session when it is stopped, without waiting for it."""
        status = self.get_status(organization_id) or {}
        if status.get("status") in RESTARTABLE:
            logger.info("starting the stopped session of org %s", organization_id)
            self.start_session(organization_id)

    # ---- the outbox -----------------------------------------------------------

    def get_message(self, message_id):
        """The message (``status``: queued, sending, sent, delivered, read, failed,
        expired or cancelled, with its times) and ``success``."""
        return self._outcome(*self._call("GET", f"/api/messages/{_path_part(message_id)}"))

    def cancel_message(self, message_id):
        """Cancels a message that is still queued; once it is on its way the answer
        is ``success: False`` with its ``status``."""
        return self._outcome(*self._call("DELETE", f"/api/messages/{_path_part(message_id)}"))

    def send_media(
        self,
        organization_id,
        phone,
        file,
        *,
        filename=None,
        caption=None,
        mimetype=None,
        idempotency_key=None,
        ttl_seconds=None,
        expires_at=None,
    ):
        """Queues a file (a prescription or a quote as PDF, a photo of a frame) for
        the org's outbox: sent as an image (JPEG, PNG, WebP, with ``caption``) or a
        document (PDF, Office files, shown as ``filename``). ``file`` is a path,
        ``bytes`` or a binary file object. The answer is as ``send_message``'s,
        with the file's ``mimetype``, ``filename`` and ``size``; a file too large
        is ``success: False`` with ``http_status`` 413, a type not sent or not the
        one its name says 400."""
        if isinstance(file, (bytes, bytearray)):
            data = bytes(file)
        elif hasattr(file, "read"):
            data = file.read()
        else:
            with open(file, "rb") as f:
                data = f.read()
            filename = filename or os.path.basename(str(file))
        digest = hashlib.sha256(data).hexdigest()
        key = idempotency_key or derive_idempotency_key(
            organization_id, phone, f"file:{digest}:{filename or ''}:{caption or ''}"
        )
        fields = {"organization_id": str(organization_id), "phone": str(phone), "idempotency_key": key}
        for name, value in (("caption", caption), ("mimetype", mimetype), ("filename", filename)):
            if value is not None:
                fields[name] = value
        if ttl_seconds is not None:
            fields["ttl_seconds"] = str(int(ttl_seconds))
        if expires_at is not None:
            fields["expires_at"] = expires_at.isoformat() if hasattr(expires_at, "isoformat") else str(expires_at)
        try:
            response = requests.post(
                f"{self.base_url}/api/send-media",
                data=fields,
                files={"file": (filename or "file", data)},
                headers={"X-API-Key": self.api_key},
                timeout=max(self.timeout, 60),
            )
        except requests.exceptions.RequestException as e:
            logger.error("wa-supervisor did not answer POST /api/send-media: %s", e)
            return self._outcome(None, str(e))
        try:
            body = response.json()
        except ValueError:
            body = None
        outcome = self._outcome(response.status_code, body)
        if not outcome["success"]:
            logger.error(
                "WhatsApp file for org %s not accepted (HTTP %s): %s",
                organization_id,
                outcome["http_status"],
                outcome["error"],
            )
        return outcome

    def check_number(self, organization_id, phone):
        """Whether ``phone`` has WhatsApp, asked through the org's connected
        session: ``{"success": True, "phone", "on_whatsapp", "jid"}``; a session
        that is not connected is ``success: False`` with its ``status``."""
        payload = {"organization_id": str(organization_id), "phone": str(phone)}
        return self._outcome(*self._call("POST", "/api/check-number", payload))

    def list_messages(self, organization_id=None, status=None, limit=None):
        """``{"success": True, "messages": [...]}``, newest first."""
        params = {
            name: value
            for name, value in (("organization_id", organization_id), ("status", status), ("limit", limit))
            if value is not None
        }
        return self._outcome(*self._call("GET", "/api/messages", params=params))


#: The instance the Django app imports, as from the deployed module.
whatsapp_baileys_client = WhatsAppBaileysClient()
