"""The packet-capture corpus (shared/corpus/pcaps) for tests: manifest, captures, payloads.

`iter_corpus_payloads()` gives every distinct cleartext EXI payload of every capture with the
schema that decodes it, so a codec test can sweep all of them:

    for schema, payload, source in iter_corpus_payloads():
        ...

Parsing the 129 captures takes about half a minute (scapy dissects ~270,000 frames), so it is
done once per process and cached.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from paths import CORPUS

from iso15118.trace.capture import Capture, CapturedMessage, assign_schemas, parse_capture
from iso15118.trace.schemas import (
    AppProtocol,
    HandshakeDecoder,
    HandshakeRequest,
    HandshakeResponse,
    Schema,
    decode_handshake_with_codec,
)

PCAP_DIR: Final = CORPUS / "pcaps"
MANIFEST_PATH: Final = PCAP_DIR / "MANIFEST.json"

#: The manifest's libcbv2g codec names → our schema names.
MANIFEST_SCHEMAS: Final[Mapping[str, Schema]] = {
    "apphand": Schema.APP_HAND,
    "din": Schema.DIN,
    "iso2": Schema.ISO2,
    "iso20_cm": Schema.ISO20_COMMON,
    "iso20_ac": Schema.ISO20_AC,
    "iso20_dc": Schema.ISO20_DC,
    "iso20_acdp": Schema.ISO20_ACDP,
    "iso20_wpt": Schema.ISO20_WPT,
}


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    source: str  # repository and path the capture came from
    file: str  # name in PCAP_DIR (several entries may share one file: duplicates upstream)
    exi_messages: int  # cleartext V2GTP EXI messages in the capture
    by_schema: Mapping[Schema, int]  # how many of them decode with libcbv2g per schema


def manifest_entries() -> list[ManifestEntry]:
    """The manifest entries whose capture was copied (empty if shared/ is not there)."""
    if not MANIFEST_PATH.is_file():
        return []
    entries = []
    for raw in json.loads(MANIFEST_PATH.read_text(encoding="utf-8")):
        if raw.get("copied_as") is None:
            continue
        by_schema = {MANIFEST_SCHEMAS[k]: v for k, v in raw["decoded_with_libcbv2g"].items()}
        entries.append(
            ManifestEntry(
                source=f"{raw['source_repo']}:{raw['source_path']}",
                file=raw["copied_as"],
                exi_messages=raw["v2gtp_exi_messages"],
                by_schema=by_schema,
            )
        )
    return entries


@functools.cache
def load_captures() -> Mapping[str, Capture]:
    """Every distinct capture file of the manifest, parsed (no schemas assigned), by file name."""
    files = sorted({entry.file for entry in manifest_entries()})
    return {name: parse_capture(PCAP_DIR / name) for name in files}


def corpus_messages(
    decode_handshake: HandshakeDecoder = decode_handshake_with_codec,
) -> dict[str, list[CapturedMessage]]:
    """The messages of every capture file with their schemas."""
    return {
        name: assign_schemas(capture.messages, decode_handshake)
        for name, capture in load_captures().items()
    }


def iter_corpus_payloads(
    decode_handshake: HandshakeDecoder = decode_handshake_with_codec,
) -> Iterator[tuple[str, bytes, str]]:
    """(schema, payload, source file) for each distinct cleartext EXI payload of the corpus.

    Distinct by payload bytes, first occurrence wins (files in name order). Payloads whose
    schema is unknown (a namespace without a grammar of ours) are left out.
    """
    seen: set[bytes] = set()
    for name, messages in sorted(corpus_messages(decode_handshake).items()):
        for message in messages:
            if message.schema is None or not message.payload_type.is_exi:
                continue
            if message.payload not in seen:
                seen.add(message.payload)
                yield message.schema.value, message.payload, name


def handshake_vectors() -> list[tuple[str, bytes, HandshakeRequest | HandshakeResponse]]:
    """(id, payload, what libcbv2g decoded) for the SupportedAppProtocol vectors of
    public_vectors*.json."""
    vectors = []
    for name in ("public_vectors.json", "public_vectors_extra.json"):
        path = CORPUS / name
        entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        for entry in entries:
            if entry["codec_kind"] != "apphand":
                continue
            summary = entry["verification"]["decoded_summary"]
            expected: HandshakeRequest | HandshakeResponse
            if isinstance(summary, list):
                expected = HandshakeRequest(
                    tuple(
                        AppProtocol(
                            p["ProtocolNamespace"],
                            int(p["VersionNumberMajor"]),
                            int(p["VersionNumberMinor"]),
                            int(p["SchemaID"]),
                            int(p["Priority"]),
                        )
                        for p in summary
                    )
                )
            else:
                schema_id = summary.get("SchemaID")
                expected = HandshakeResponse(
                    summary["ResponseCode"], None if schema_id is None else int(schema_id)
                )
            vectors.append((entry["id"], bytes.fromhex(entry["hex"]), expected))
    return vectors
