"""The additional checksums S3 keeps with an object: CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256.

A client declares one (`x-amz-checksum-<algorithm>`, base64 of the big-endian digest); the store
verifies it as the bytes arrive, keeps it and hands it back. A multipart object's checksum is
either of the whole object (`FULL_OBJECT`: the part CRCs combined, as if computed in one pass)
or `COMPOSITE`: the checksum of the concatenated binary part checksums, followed by `-<parts>`.

CRC32C and CRC64NVME come from `anycrc` (a small C extension without dependencies, also used
for combining CRCs); CRC32 from zlib, SHA from hashlib, all releasing no state between calls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import anycrc

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
DEFAULT = "crc64nvme"
"""What S3 computes and keeps of an upload that declares no checksum."""
FULL_OBJECT = "FULL_OBJECT"
COMPOSITE = "COMPOSITE"
_DIGEST_BYTES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
_CRC_MODELS = {"crc32": "CRC32-ISO-HDLC", "crc32c": "CRC32-ISCSI", "crc64nvme": "CRC64-NVME"}
_models: dict[str, Any] = {}


class RunningChecksum(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


def _model(algorithm: str) -> Any:
    model = _models.get(algorithm)
    if model is None:
        model = _models[algorithm] = anycrc.Model(_CRC_MODELS[algorithm])
    return model


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _AnyCrc:
    def __init__(self, algorithm: str) -> None:
        self._model = _model(algorithm)
        self._size = _DIGEST_BYTES[algorithm]
        self.value = self._model.calc(b"")

    def update(self, data: bytes, /) -> None:
        self.value = self._model.calc(data, self.value)

    def digest(self) -> bytes:
        return int(self.value).to_bytes(self._size, "big")


def running(algorithm: str) -> RunningChecksum:
    """A fresh running checksum of `algorithm` (one of `ALGORITHMS`)."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in ("crc32c", "crc64nvme"):
        return _AnyCrc(algorithm)
    return hashlib.new(algorithm)


def encode(digest: bytes) -> str:
    """A digest as S3 writes it: base64."""
    return base64.b64encode(digest).decode()


def of_bytes(algorithm: str, data: bytes) -> str:
    """The base64 checksum of `data`."""
    state = running(algorithm)
    state.update(data)
    return encode(state.digest())


def valid_value(algorithm: str, value: str) -> bool:
    """Whether `value` is the base64 of a digest of `algorithm`'s size."""
    try:
        return len(base64.b64decode(value, validate=True)) == _DIGEST_BYTES[algorithm]
    except (binascii.Error, ValueError):
        return False


def supports(algorithm: str, kind: str) -> bool:
    """Whether S3 allows a multipart upload's checksum of that algorithm and type: CRC64NVME is
    full-object only, SHA-1 and SHA-256 composite only, CRC32 and CRC32C either."""
    if kind == FULL_OBJECT:
        return algorithm in _CRC_MODELS
    return algorithm != "crc64nvme"


def default_type(algorithm: str) -> str:
    return FULL_OBJECT if algorithm == "crc64nvme" else COMPOSITE


def combine(algorithm: str, parts: list[tuple[str, int]]) -> str:
    """The full-object CRC of parts given as (base64 CRC, size), in order."""
    model = _model(algorithm)
    total: int | None = None
    for value, size in parts:
        crc = int.from_bytes(base64.b64decode(value), "big")
        total = crc if total is None else model.combine(total, crc, size)
    assert total is not None
    return encode(int(total).to_bytes(_DIGEST_BYTES[algorithm], "big"))


def composite(algorithm: str, part_values: list[str]) -> str:
    """S3's composite checksum: of the concatenated binary part checksums, then `-<count>`."""
    joined = b"".join(base64.b64decode(value) for value in part_values)
    return f"{of_bytes(algorithm, joined)}-{len(part_values)}"


@dataclass(frozen=True)
class Checksum:
    """The checksum kept with an object or a part."""

    algorithm: str
    value: str
    type: str = FULL_OBJECT
    parts: tuple[str, ...] = field(default=())
    """Of a multipart object: each part's checksum, in order."""

    @property
    def header(self) -> str:
        return f"x-amz-checksum-{self.algorithm}"

    @property
    def element(self) -> str:
        """Its name in S3's XML documents: `ChecksumCRC32`, `ChecksumCRC64NVME`..."""
        return "Checksum" + self.algorithm.upper()

    def to_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"algorithm": self.algorithm, "value": self.value}
        if self.type != FULL_OBJECT:
            stored["type"] = self.type
        if self.parts:
            stored["parts"] = list(self.parts)
        return stored

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> Checksum | None:
        if not stored:
            return None
        return cls(
            algorithm=stored["algorithm"],
            value=stored["value"],
            type=stored.get("type", FULL_OBJECT),
            parts=tuple(stored.get("parts") or ()),
        )
