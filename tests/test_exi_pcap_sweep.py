"""Every distinct cleartext EXI payload of the real-car captures decodes and re-encodes
bit for bit, with the schema the captured handshake negotiated."""

from __future__ import annotations

from collections import Counter

import pytest
from paths import CORPUS, require

from iso15118 import exi

pytestmark = pytest.mark.slow

DISTINCT_PAYLOADS = 12_853  # ../shared/corpus/README.md


def test_every_captured_payload_round_trips() -> None:
    require(CORPUS / "pcaps" / "MANIFEST.json")
    pytest.importorskip("scapy")
    from corpus import iter_corpus_payloads

    per_schema: Counter[str] = Counter()
    failures = []
    padded = 0
    for schema, payload, source in iter_corpus_payloads():
        per_schema[schema] += 1
        try:
            again = exi.encode(schema, exi.decode(schema, payload), strict=False)
        except exi.ExiError as exc:
            failures.append(f"{source}: {schema} {payload.hex()}: {exc}")
            continue
        if again == payload:
            continue
        if payload == again + b"\0" * (len(payload) - len(again)):
            padded += 1  # Tesla DIN ContractAuthenticationReq ends in a stray 0x00
            continue
        failures.append(f"{source}: {schema} {payload.hex()} re-encoded as {again.hex()}")
    assert not failures, "\n".join(failures[:20])
    assert sum(per_schema.values()) == DISTINCT_PAYLOADS, per_schema
    assert padded == 4
