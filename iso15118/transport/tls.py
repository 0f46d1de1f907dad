"""`ssl.SSLContext` builders for ISO 15118-2 (TLS 1.2) and ISO 15118-20 (TLS 1.3, mutual).

Each builder takes one explicit, frozen configuration and returns a ready context for
`iso15118.transport.tcp` (or any asyncio stream). A configuration error raises a
`TLSConfigError` subclass that names the file and the reason; nothing is read from a global.

ISO 15118-2 (requirement IDs as public implementations cite them: Tinkerforge esp32-firmware
`isotls.cpp`, EVerest libiso15118 `connection_openssl.cpp`):

- TLS 1.2 only; the SECC is the server and the EV authenticates the SECC only (no client
  certificate).
- Cipher suites, [V2G2-602] / Table 7: TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 and
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256. **OpenSSL 3 has no static-ECDH suites** (they were
  removed in OpenSSL 1.1.0), so with the OpenSSL that Python links here only
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (OpenSSL name ECDHE-ECDSA-AES128-SHA256) is offered
  and accepted; `available_iso2_cipher_suites()` tells what the running OpenSSL gives.
- secp256r1 keys with ECDSA, [V2G2-006] / [V2G2-007]: every certificate of the SECC chain must
  be on secp256r1 and ECDHE uses secp256r1 only.

ISO 15118-20 (same sources, plus the -20 text quoted in public repositories):

- TLS 1.3 only ([V2G20-1264]); the SECC is the TLS server ([V2G20-2374]) and requests and
  verifies the EV's vehicle certificate chain ([V2G20-2400]).
- Cipher suites, [V2G20-2458] / Table 6, in this order ([V2G20-1856]): TLS_AES_256_GCM_SHA384,
  TLS_CHACHA20_POLY1305_SHA256. **Python 3.11's `ssl` cannot set the TLS 1.3 suites**: OpenSSL's
  default list (TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256)
  stays enabled. The server prefers its own order, so two peers built here agree on
  TLS_AES_256_GCM_SHA384; `verify_iso20_session()` refuses a session that negotiated anything
  outside Table 6 (pass it as `tls_check` to the transport).
- Named groups, [V2G20-1634] / Table 7: secp521r1 and x448. Python 3.11 sets exactly one group
  per context (`set_ecdh_curve`); `Iso20Group` chooses it, secp521r1 by default.
- Signature algorithms, Table 8: ecdsa_secp521r1_sha512 and ed448. Python cannot set the list;
  TLS 1.3 ties the scheme to the certificate's key, so the builders accept only secp521r1
  ([V2G20-2674]) or Ed448 ([V2G20-2319]) leaf keys, which yields exactly those two schemes.

Not possible with Python's `ssl` and therefore not done: the trusted_ca_keys extension that an
ISO 15118-2 EVCC sends, and OCSP stapling on the server side.

`keylog_file` makes OpenSSL append the session secrets in the NSS key-log format that Wireshark
reads (CLIENT_RANDOM lines for TLS 1.2, *_TRAFFIC_SECRET lines for TLS 1.3). It is a debugging
aid: anyone holding the file can decrypt the sessions.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

from ._certfiles import (
    CertificateFileError,
    certificate_key_type,
    pem_file,
    read_certificates,
    read_private_key,
)

__all__ = [
    "ISO2_CIPHER_SUITES",
    "ISO20_CIPHER_SUITES",
    "CertificateChain",
    "CertificateChainError",
    "Iso2ClientConfig",
    "Iso2ServerConfig",
    "Iso20ClientConfig",
    "Iso20Group",
    "Iso20ServerConfig",
    "KeyLogError",
    "PrivateKeyError",
    "TLSConfigError",
    "TLSProfileError",
    "TrustAnchorError",
    "available_iso2_cipher_suites",
    "iso2_client_context",
    "iso2_server_context",
    "iso20_client_context",
    "iso20_server_context",
    "verify_iso2_session",
    "verify_iso20_session",
]

#: ISO 15118-2 Table 7 ([V2G2-602]), IANA names -> OpenSSL names.
ISO2_CIPHER_SUITES: Final = {
    "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256": "ECDH-ECDSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
}
#: ISO 15118-20 Table 6 ([V2G20-2458]), in the standard's order of preference ([V2G20-1856]).
ISO20_CIPHER_SUITES: Final = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

_ISO2_CURVE: Final = "prime256v1"  # secp256r1 in OpenSSL's naming, [V2G2-006]
_ISO2_KEY_TYPES: Final = frozenset({"secp256r1"})
_ISO20_KEY_TYPES: Final = frozenset({"secp521r1", "ed448"})  # [V2G20-2674], [V2G20-2319]
_HARDENING: Final = ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


class TLSConfigError(Exception):
    """A TLS configuration that cannot be turned into a context; `path` names the file."""

    def __init__(self, reason: str, path: Path | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path is not None else reason)


class CertificateChainError(TLSConfigError):
    """The own certificate chain is unreadable, empty or outside the standard's profile."""


class PrivateKeyError(TLSConfigError):
    """The private key is unreadable, needs another password, or does not match the leaf."""


class TrustAnchorError(TLSConfigError):
    """A trust anchor (root certificate) file is missing, unreadable or not a certificate."""


class KeyLogError(TLSConfigError):
    """The key-log file cannot be opened for appending."""


class TLSProfileError(Exception):
    """A completed handshake whose parameters are outside the standard's TLS profile."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateChain:
    """An own certificate chain: the leaf first, then its Sub-CAs (leaf's issuer next).

    Each file is PEM (one or more certificates) or DER (one certificate). The private key is
    PEM or DER (PKCS#8, encrypted PKCS#8 or SEC1); `password` decrypts an encrypted key.
    """

    certificates: tuple[Path, ...]
    private_key: Path
    password: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Iso2ServerConfig:
    """The SECC side of ISO 15118-2 TLS: its P-256 chain (leaf + CPO Sub-CAs)."""

    chain: CertificateChain
    keylog_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Iso2ClientConfig:
    """The EV side of ISO 15118-2 TLS: the V2G root certificates it trusts."""

    trust_anchors: tuple[Path, ...]
    keylog_file: Path | None = None


class Iso20Group(Enum):
    """The ECDHE group of an ISO 15118-20 context (Table 7; one per context in Python 3.11)."""

    SECP521R1 = "secp521r1"
    X448 = "X448"


@dataclass(frozen=True, slots=True, kw_only=True)
class Iso20ServerConfig:
    """The SECC side of ISO 15118-20 TLS: its chain and the roots of accepted vehicle chains."""

    chain: CertificateChain
    trust_anchors: tuple[Path, ...]
    group: Iso20Group = Iso20Group.SECP521R1
    keylog_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Iso20ClientConfig:
    """The EV side of ISO 15118-20 TLS: its vehicle certificate chain and the V2G roots."""

    chain: CertificateChain
    trust_anchors: tuple[Path, ...]
    group: Iso20Group = Iso20Group.SECP521R1
    keylog_file: Path | None = None


def available_iso2_cipher_suites() -> tuple[str, ...]:
    """The ISO 15118-2 Table 7 suites (IANA names) that the running OpenSSL offers."""
    by_openssl = {name: iana for iana, name in ISO2_CIPHER_SUITES.items()}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.set_ciphers(":".join(ISO2_CIPHER_SUITES.values()))
    except ssl.SSLError:
        return ()
    return tuple(
        by_openssl[cipher["name"]]
        for cipher in context.get_ciphers()
        if cipher["name"] in by_openssl
    )


def iso2_server_context(config: Iso2ServerConfig) -> ssl.SSLContext:
    """The SECC's ISO 15118-2 context: TLS 1.2, Table 7 suites, secp256r1, no client auth."""
    context = _tls12_context(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_NONE  # the EV authenticates the SECC only
    _load_chain(context, config.chain, _ISO2_KEY_TYPES, "ISO 15118-2 [V2G2-006]")
    _set_keylog(context, config.keylog_file)
    return context


def iso2_client_context(config: Iso2ClientConfig) -> ssl.SSLContext:
    """The EV's ISO 15118-2 context: TLS 1.2, verifies the SECC chain against the V2G roots."""
    context = _tls12_context(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the SECC certificate names the EVSE, not a host
    context.verify_mode = ssl.CERT_REQUIRED
    _load_trust_anchors(context, config.trust_anchors)
    _set_keylog(context, config.keylog_file)
    return context


def iso20_server_context(config: Iso20ServerConfig) -> ssl.SSLContext:
    """The SECC's ISO 15118-20 context: TLS 1.3, requires and verifies the vehicle chain."""
    context = _tls13_context(ssl.PROTOCOL_TLS_SERVER, config.group)
    context.verify_mode = ssl.CERT_REQUIRED  # [V2G20-2400]
    _load_chain(context, config.chain, _ISO20_KEY_TYPES, "ISO 15118-20 [V2G20-2674]")
    _load_trust_anchors(context, config.trust_anchors)
    _set_keylog(context, config.keylog_file)
    return context


def iso20_client_context(config: Iso20ClientConfig) -> ssl.SSLContext:
    """The EV's ISO 15118-20 context: TLS 1.3, presents the vehicle chain, verifies the SECC."""
    context = _tls13_context(ssl.PROTOCOL_TLS_CLIENT, config.group)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _load_chain(context, config.chain, _ISO20_KEY_TYPES, "ISO 15118-20 [V2G20-2674]")
    _load_trust_anchors(context, config.trust_anchors)
    _set_keylog(context, config.keylog_file)
    return context


def verify_iso2_session(ssl_object: ssl.SSLObject) -> None:
    """Raise `TLSProfileError` unless the session is TLS 1.2 with a Table 7 suite."""
    _verify_session(ssl_object, "TLSv1.2", set(ISO2_CIPHER_SUITES.values()), "[V2G2-602]")


def verify_iso20_session(ssl_object: ssl.SSLObject) -> None:
    """Raise `TLSProfileError` unless the session is TLS 1.3 with a Table 6 suite."""
    _verify_session(ssl_object, "TLSv1.3", set(ISO20_CIPHER_SUITES), "[V2G20-2458]")


def _verify_session(
    ssl_object: ssl.SSLObject, version: str, suites: set[str], requirement: str
) -> None:
    negotiated_version = ssl_object.version()
    cipher = ssl_object.cipher()
    if negotiated_version != version:
        raise TLSProfileError(f"negotiated {negotiated_version}, the profile needs {version}")
    if cipher is None or cipher[0] not in suites:
        name = cipher[0] if cipher else None
        raise TLSProfileError(f"cipher suite {name} is not one of {sorted(suites)} {requirement}")


def _tls12_context(protocol: ssl._SSLMethod) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.options |= _HARDENING | ssl.OP_CIPHER_SERVER_PREFERENCE
    # Both Table 7 names: OpenSSL keeps the ones it implements (ECDHE only on OpenSSL 3).
    try:
        context.set_ciphers(":".join(ISO2_CIPHER_SUITES.values()))
    except ssl.SSLError as exc:
        raise TLSConfigError(f"OpenSSL offers none of the [V2G2-602] suites ({exc})") from None
    context.set_ecdh_curve(_ISO2_CURVE)
    return context


def _tls13_context(protocol: ssl._SSLMethod, group: Iso20Group) -> ssl.SSLContext:
    if not ssl.HAS_TLSv1_3:
        raise TLSConfigError("this OpenSSL has no TLS 1.3, which ISO 15118-20 requires")
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.options |= _HARDENING | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.set_ecdh_curve(group.value)
    except ValueError as exc:
        raise TLSConfigError(f"this OpenSSL lacks the group {group.value} ({exc})") from None
    return context


def _load_chain(
    context: ssl.SSLContext,
    chain: CertificateChain,
    key_types: frozenset[str],
    profile: str,
) -> None:
    """Check each certificate's key type, then hand chain and key to OpenSSL."""
    if not chain.certificates:
        raise CertificateChainError("the certificate chain is empty (the leaf comes first)")
    pem_parts: list[str] = []
    for path in chain.certificates:
        try:
            ders = read_certificates(path)
        except CertificateFileError as exc:
            raise CertificateChainError(exc.reason, path) from None
        for der in ders:
            key_type = certificate_key_type(der)
            if key_type not in key_types:
                raise CertificateChainError(
                    f"certificate key is {key_type}; {profile} needs {sorted(key_types)}", path
                )
            pem_parts.append(ssl.DER_cert_to_PEM_cert(der))
    try:
        key_pem, encrypted = read_private_key(chain.private_key)
    except CertificateFileError as exc:
        raise PrivateKeyError(exc.reason, chain.private_key) from None
    with pem_file("".join(pem_parts)) as cert_path, pem_file(key_pem) as key_path:
        _load_cert_chain(context, cert_path, key_path, chain, encrypted)


def _load_cert_chain(
    context: ssl.SSLContext,
    cert_path: str,
    key_path: str,
    chain: CertificateChain,
    encrypted: bool,
) -> None:
    # An empty password (never None) keeps OpenSSL from prompting on the terminal.
    try:
        context.load_cert_chain(cert_path, key_path, password=chain.password or b"")
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in f"{exc.reason} {exc}".upper():
            reason = "the private key does not match the leaf certificate"
        elif encrypted:
            reason = "cannot decrypt the private key (wrong or missing password)"
        else:
            reason = f"OpenSSL refused the key ({exc})"
        raise PrivateKeyError(reason, chain.private_key) from None


def _load_trust_anchors(context: ssl.SSLContext, anchors: Iterable[Path]) -> None:
    count = 0
    for path in anchors:
        try:
            ders = read_certificates(path)
        except CertificateFileError as exc:
            raise TrustAnchorError(exc.reason, path) from None
        try:
            context.load_verify_locations(cadata=b"".join(ders))
        except ssl.SSLError as exc:
            raise TrustAnchorError(f"OpenSSL refused the certificate ({exc})", path) from None
        count += len(ders)
    if count == 0:
        raise TrustAnchorError("no trust anchors given; the peer could not be verified")


def _set_keylog(context: ssl.SSLContext, path: Path | None) -> None:
    if path is None:
        return
    try:
        context.keylog_filename = str(path)
    except OSError as exc:
        raise KeyLogError(f"cannot open the key-log file ({exc.strerror})", path) from None
