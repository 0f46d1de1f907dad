"""A payment processor reached over HTTP: JSON requests signed with a shared secret.

Configuration (the ``billing.processor`` section of the SECC's YAML)::

    processor:
      class: "secc.billing.webhook:WebhookProcessor"
      options:
        url: https://billing.example.com/v1/records      # where settle POSTs
        authorize_url: https://billing.example.com/v1/authorize   # optional
        secret_file: webhook.secret                       # or secret: "..."
        timeout: 10            # seconds for a whole request
        connect_timeout: 5
        ca_file: operator-ca.pem                          # optional, for a private CA
        headers: {Authorization: "Bearer ..."}            # optional extra headers

**settle** POSTs ``{"type": "billing_record", "idempotency_key": KEY, "record": RECORD}``
(RECORD as `secc.records_json.billing_record_to_json`). The answer decides:

==================================  ==========================================================
2xx                                 settled; ``{"reference": "...", "duplicate": bool}`` read
                                    if the body is a JSON object (a garbled body is retried)
409                                 the receiver had settled this key already: settled
408, 429, 5xx, no answer, timeout   `DeliveryError`: retried after the back-off
other 4xx                           `RejectedRecord`: held for an operator
anything else (3xx: not followed)   `DeliveryError`
==================================  ==========================================================

**authorize** POSTs ``{"type": "authorize", "session_id", "evse_id", "kind", "contract_id",
"id_token", "certificate_hash_data", "contract_certificate"}`` (bytes in hex) to
`authorize_url` and expects ``{"status": "accepted" | "rejected" | "expired", "reason": ...}``;
without `authorize_url` every identification is accepted, and a receiver that cannot be asked
gives ``unavailable``.

Every request carries the headers ``Idempotency-Key`` (settle), ``X-Billing-Timestamp`` (Unix
seconds) and ``X-Billing-Signature: sha256=HEX``, the HMAC-SHA256 with the shared secret over
``TIMESTAMP + "." + BODY``. Receivers check it with `verify_signature` (which also refuses a
timestamp too far from their clock, against replays). Plain ``http://`` is refused unless the
host is a loopback address or `allow_insecure` is set: the secret and the records would cross
the network in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from secc.payment import DeliveryError, PaymentProcessor, RejectedRecord, Settlement
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
)
from secc.records_json import billing_record_to_json

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureError",
    "WebhookProcessor",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
TIMESTAMP_HEADER: Final = "X-Billing-Timestamp"
SIGNATURE_HEADER: Final = "X-Billing-Signature"
_SCHEME: Final = "sha256="
MAX_ANSWER: Final = 64 * 1024  # bytes of an answer read; a longer one is garbled
_RETRYABLE_STATUS: Final = frozenset({408, 429})
_DECISIONS: Final = {
    "accepted": AuthorizationStatus.ACCEPTED,
    "rejected": AuthorizationStatus.REJECTED,
    "expired": AuthorizationStatus.EXPIRED,
}


class SignatureError(ValueError):
    """A webhook request whose signature headers are missing, stale or wrong."""


# --- signing ----------------------------------------------------------------------------------


def _mac(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, now: float) -> dict[str, str]:
    """The timestamp and signature headers for `body` sent at `now` (Unix seconds)."""
    timestamp = str(int(now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: _SCHEME + _mac(secret, timestamp, body)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: look the name up without regard to case
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


def verify_signature(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = 300.0
) -> None:
    """Check a request's signature headers against `body` (as received, byte for byte);
    `now` is the receiver's Unix time and `tolerance` how far in seconds the sender's
    timestamp may be from it. Raises `SignatureError` saying what is wrong."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if timestamp is None or signature is None:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds: {timestamp[:20]!r}")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(f"{TIMESTAMP_HEADER} {timestamp} is more than {tolerance:g} s off")
    if not signature.startswith(_SCHEME):
        raise SignatureError(f"{SIGNATURE_HEADER} must be {_SCHEME}HEX")
    expected = _mac(secret, timestamp, body)
    if not hmac.compare_digest(signature[len(_SCHEME) :].lower(), expected):
        raise SignatureError("signature does not match (wrong secret or altered body)")


# --- the processor ----------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: object, what: str, allow_insecure: bool) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"webhook {what} must be a URL, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook {what} {url!r} is not an http(s) URL with a host")
    if parts.scheme == "http" and not allow_insecure and not _is_loopback(parts.hostname):
        raise ValueError(
            f"webhook {what} {url!r}: plain http to a remote host would send the secret and "
            "the records in clear; use https (or set allow_insecure: true)"
        )
    return url


def _read_secret(secret: object, secret_file: object) -> bytes:
    if (secret is None) == (secret_file is None):
        raise ValueError("webhook needs exactly one of secret and secret_file")
    if secret is not None:
        if not isinstance(secret, str):
            raise ValueError("webhook secret must be text")
        value = secret.encode()
    else:
        if not isinstance(secret_file, str | Path):
            raise ValueError("webhook secret_file must be a path")
        try:
            value = Path(secret_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"webhook secret_file {secret_file}: {exc.strerror or exc}") from None
    if not value:
        raise ValueError("webhook secret is empty")
    return value


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"webhook {what} must be a number of seconds > 0, not {value!r}")
    return float(value)


class WebhookProcessor(PaymentProcessor):
    """`PaymentProcessor` over HTTP (see the module documentation)."""

    def __init__(
        self,
        *,
        url: str,
        secret: str | None = None,
        secret_file: str | Path | None = None,
        authorize_url: str | None = None,
        name: str = "payment",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        allow_insecure: bool = False,
        ca_file: str | Path | None = None,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(allow_insecure, bool):
            raise ValueError("webhook allow_insecure must be true or false")
        self.url = _check_url(url, "url", allow_insecure)
        self.authorize_url = (
            None
            if authorize_url is None
            else _check_url(authorize_url, "authorize_url", allow_insecure)
        )
        if not isinstance(name, str) or not name:
            raise ValueError("webhook name (the outbox destination) must be non-empty text")
        self.name = name
        self._secret = _read_secret(secret, secret_file)
        self._timeout = aiohttp.ClientTimeout(
            total=_seconds(timeout, "timeout"),
            sock_connect=_seconds(connect_timeout, "connect_timeout"),
        )
        extra = dict(headers or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
            raise ValueError("webhook headers must map text to text")
        self._headers = extra
        self._ssl: ssl.SSLContext | None = None
        if ca_file is not None:
            try:
                self._ssl = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"webhook ca_file {ca_file}: {exc}") from None
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the secret
        return f"WebhookProcessor(name={self.name!r}, url={self.url!r})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=connector, headers=self._headers
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, url: str, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST signed JSON; (status, body). Network failures raise DeliveryError."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        signed = {
            "Content-Type": "application/json",
            **(headers or {}),
            **sign(self._secret, body, self._clock()),
        }
        try:
            async with self._client().post(
                url, data=body, headers=signed, allow_redirects=False
            ) as response:
                answer = await _read_limited(response)
                return response.status, answer
        except TimeoutError:
            raise DeliveryError(f"no answer from {url} within {self._timeout.total:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"{url}: {type(exc).__name__}: {exc}") from None

    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        payload = {
            "type": "billing_record",
            "idempotency_key": idempotency_key,
            "record": billing_record_to_json(record),
        }
        status, body = await self._post(self.url, payload, {IDEMPOTENCY_HEADER: idempotency_key})
        if 200 <= status < 300:
            answer = _json_object(body)
            if answer is None:
                raise DeliveryError(f"HTTP {status} with an answer that is not a JSON object")
            return Settlement(
                reference=_text(answer.get("reference")),
                duplicate=bool(answer.get("duplicate") is True),
            )
        if status == 409:
            answer = _json_object(body) or {}
            return Settlement(reference=_text(answer.get("reference")), duplicate=True)
        message = f"HTTP {status}{_snippet(body)}"
        if 400 <= status < 500 and status not in _RETRYABLE_STATUS:
            raise RejectedRecord(message)
        raise DeliveryError(message)

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        if self.authorize_url is None:
            return AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, reason="no pre-auth")
        payload = {
            "type": "authorize",
            "session_id": request.session_id,
            "evse_id": request.evse_id,
            "kind": request.kind.value,
            "contract_id": request.contract_id,
            "id_token": request.id_token,
            "certificate_hash_data": [
                {
                    "hash_algorithm": h.hash_algorithm,
                    "issuer_name_hash": h.issuer_name_hash.hex(),
                    "issuer_key_hash": h.issuer_key_hash.hex(),
                    "serial_number": h.serial_number,
                    "responder_url": h.responder_url,
                }
                for h in request.certificate_hash_data
            ],
            "contract_certificate": (
                None if request.contract_certificate is None else request.contract_certificate.hex()
            ),
        }
        try:
            status, body = await self._post(self.authorize_url, payload)
        except DeliveryError as exc:
            return _unavailable(str(exc), request)
        answer = _json_object(body) if 200 <= status < 300 else None
        if answer is None:
            return _unavailable(f"HTTP {status}{_snippet(body)}", request)
        decision = _DECISIONS.get(str(answer.get("status")))
        if decision is None:
            return _unavailable(f"unknown status {answer.get('status')!r}", request)
        return AuthorizationDecision(status=decision, reason=_text(answer.get("reason")))


def _unavailable(reason: str, request: AuthorizationRequest) -> AuthorizationDecision:
    log.warning(
        "payment processor authorisation unavailable: %s",
        reason,
        extra={"session_id": request.session_id},
    )
    return AuthorizationDecision(status=AuthorizationStatus.UNAVAILABLE, reason=reason)


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER:
            raise DeliveryError(f"answer longer than {MAX_ANSWER} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The answer as a JSON object ({} for an empty body); None if it is anything else."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _snippet(body: bytes) -> str:
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    return f": {text}" if text else ""
