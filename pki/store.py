"""A trust store on disk: roots and intermediates as PEM or DER files in one directory.

`TrustStore.from_directory(path)` reads every ``*.pem``, ``*.crt``, ``*.cer`` and ``*.der``
file (a PEM file may hold several certificates); self-signed certificates are roots, the others
intermediates. `reload()` re-reads the directory when a file was added, removed or changed
(modification time or size), so a running charger picks up new roots without a restart; an
unreadable file is logged and skipped, never fatal. `expiring(within, at)` lists what expires
soon. The store is also built in memory with `TrustStore(roots, intermediates)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

__all__ = ["ExpiryNotice", "TrustStore", "load_certificates"]

log = logging.getLogger(__name__)

SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der"})
_PEM_MARK = b"-----BEGIN CERTIFICATE-----"


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in `data`: PEM blocks, or DER certificates concatenated."""
    if _PEM_MARK in data:
        return x509.load_pem_x509_certificates(data)
    out: list[x509.Certificate] = []
    pos = 0
    while pos < len(data):
        end = pos + _der_length(data, pos)
        out.append(x509.load_der_x509_certificate(data[pos:end]))
        pos = end
    if not out:
        raise ValueError("no certificate in the input")
    return out


def _der_length(data: bytes, pos: int) -> int:
    """Length of the DER SEQUENCE starting at `pos`, header included."""
    if len(data) < pos + 2 or data[pos] != 0x30:
        raise ValueError(f"no DER certificate at offset {pos}")
    first = data[pos + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < pos + 2 + count:
        raise ValueError(f"bad DER length at offset {pos}")
    return 2 + count + int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


@dataclass(frozen=True, slots=True)
class ExpiryNotice:
    certificate: x509.Certificate
    not_after: datetime
    remaining: timedelta  # negative: already expired
    source: Path | None

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


class TrustStore:
    """Trust anchors (roots) and known intermediates."""

    def __init__(
        self,
        roots: Iterable[x509.Certificate],
        intermediates: Iterable[x509.Certificate] = (),
        *,
        directory: Path | None = None,
    ) -> None:
        self._roots = tuple(roots)
        self._intermediates = tuple(intermediates)
        self._directory = directory
        self._sources: dict[bytes, Path] = {}
        self._snapshot: dict[Path, tuple[int, int]] = {}

    @classmethod
    def from_directory(cls, directory: Path) -> TrustStore:
        store = cls((), directory=directory)
        store.reload()
        return store

    @property
    def roots(self) -> Sequence[x509.Certificate]:
        return self._roots

    @property
    def intermediates(self) -> Sequence[x509.Certificate]:
        return self._intermediates

    def _scan(self) -> dict[Path, tuple[int, int]]:
        assert self._directory is not None
        snapshot = {}
        for path in sorted(self._directory.iterdir()):
            if path.suffix.lower() in SUFFIXES and path.is_file():
                stat = path.stat()
                snapshot[path] = (stat.st_mtime_ns, stat.st_size)
        return snapshot

    def reload(self) -> bool:
        """Re-read the directory if anything in it changed; True when the content was reread."""
        if self._directory is None:
            return False
        snapshot = self._scan()
        if snapshot == self._snapshot:
            return False
        roots: list[x509.Certificate] = []
        intermediates: list[x509.Certificate] = []
        sources: dict[bytes, Path] = {}
        for path in snapshot:
            try:
                certificates = load_certificates(path.read_bytes())
            except (OSError, ValueError) as exc:
                log.warning("trust store: skipping %s: %s", path, exc)
                continue
            for cert in certificates:
                (roots if cert.subject == cert.issuer else intermediates).append(cert)
                sources[cert.fingerprint(hashes.SHA256())] = path
        self._roots, self._intermediates = tuple(roots), tuple(intermediates)
        self._sources, self._snapshot = sources, snapshot
        log.info(
            "trust store %s: %d roots, %d intermediates",
            self._directory,
            len(roots),
            len(intermediates),
        )
        return True

    def expiring(self, within: timedelta, at: datetime) -> list[ExpiryNotice]:
        """Certificates whose notAfter lies before `at` + `within` (expired ones included)."""
        out = []
        for cert in (*self._roots, *self._intermediates):
            not_after = cert.not_valid_after_utc
            if not_after <= at + within:
                source = self._sources.get(cert.fingerprint(hashes.SHA256()))
                out.append(ExpiryNotice(cert, not_after, not_after - at, source))
        return sorted(out, key=lambda n: n.not_after)
