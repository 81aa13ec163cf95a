"""OSCAR's rules for a `/run` request body and its answer, on files, never whole in memory.

A body is the script's input file: JSON is kept as it is, anything else must be base64 and is
decoded. The answer is the base64 of the single output file, the base64 of a zip of all outputs
when there are several, or the script's output text when it wrote none. With
`application/octet-stream` (our extension) both sides skip base64. Unless the service opts out
(`mask_secrets: false`), its secrets are replaced with `MASK` in the answer, as in its log.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from oscarpy.engine.run.errors import InvalidBody
from oscarpy.log import MASK

JSON_PARSE_LIMIT = 1024 * 1024
"""Bodies up to this size are parsed to tell JSON from base64; a larger body counts as JSON when
it starts with `{`, `[` or `"`, none of which base64 uses."""
CHUNK = 1024 * 1024
ENCODE_CHUNK = 3 * 64 * 1024
"""A multiple of 3, so that the base64 of consecutive chunks concatenates into one valid text."""
ZIP_NAME = "outputs.zip"
_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def is_json(path: Path) -> bool:
    size = path.stat().st_size
    if size <= JSON_PARSE_LIMIT:
        try:
            json.loads(path.read_bytes())
        except ValueError:
            return False
        return True
    with path.open("rb") as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1] in (b"{", b"[", b'"')
    return False


def stage_body(raw: Path, destination: Path) -> None:
    """Turn the request body at `raw` into the script's input file at `destination` (moved or
    decoded); raises `InvalidBody` when it is neither JSON nor base64."""
    if is_json(raw):
        os.replace(raw, destination)
        return
    try:
        decode_base64_file(raw, destination)
    except InvalidBody:
        destination.unlink(missing_ok=True)
        raise
    raw.unlink(missing_ok=True)


def decode_base64_file(source: Path, destination: Path) -> None:
    """Streaming base64 decoding that accepts line breaks and refuses anything else invalid."""
    carry = b""
    padded = False
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            data = carry + b"".join(chunk.split())
            usable = len(data) - len(data) % 4
            block, carry = data[:usable], data[usable:]
            if not block:
                continue
            if padded:
                raise InvalidBody(_invalid("data after the padding '='"))
            try:
                writer.write(base64.b64decode(block, validate=True))
            except (binascii.Error, ValueError) as error:
                why = _bad_character(block) or "the padding '=' is misplaced"
                raise InvalidBody(_invalid(why)) from error
            padded = block.endswith(b"=")
        if carry:
            why = _bad_character(carry) or "its length is not a multiple of 4"
            raise InvalidBody(_invalid(why))


def _bad_character(block: bytes) -> str | None:
    for byte in block:
        if byte not in _ALPHABET:
            return f"character {chr(byte)!r} is not base64"
    return None


def _invalid(why: str) -> str:
    return (
        f"the request body is neither JSON nor valid base64 ({why}); send JSON, base64, or raw "
        "bytes with Content-Type: application/octet-stream"
    )


def answer_file(output_dir: Path, files: list[str], secrets: Sequence[bytes] = ()) -> Path | None:
    """The file the answer carries: the single output, a zip of several (written next to the
    output directory, `secrets` masked in each member), or `None` when the script wrote
    nothing and its output text answers."""
    if not files:
        return None
    if len(files) == 1:
        return output_dir / files[0]
    archive = output_dir.parent / ZIP_NAME
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for relative in files:
            with zipped.open(relative, "w") as member:
                for chunk in masked(raw_chunks(output_dir / relative), secrets):
                    member.write(chunk)
    return archive


def masked(chunks: Iterable[bytes], secrets: Sequence[bytes]) -> Iterator[bytes]:
    """`chunks` with every secret replaced by `MASK`, also one that spans two chunks (the
    longest secret wins where one starts another)."""
    ordered = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    if not ordered:
        yield from chunks
        return
    pattern = re.compile(b"|".join(re.escape(secret) for secret in ordered))
    mask = MASK.encode()
    longest = len(ordered[0])
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        out: list[bytes] = []
        done = 0
        for match in pattern.finditer(data):
            if match.start() + longest > len(data):
                break  # more data may make a longer secret of it: decided with the next chunk
            out += [data[done : match.start()], mask]
            done = match.end()
        # Whatever could still start a secret (the last `longest - 1` bytes) stays for the next
        # chunk; no match starts before that cut: they were all replaced above.
        cut = max(done, len(data) - longest + 1)
        out.append(data[done:cut])
        carry = data[cut:]
        if any(out):
            yield b"".join(out)
    if carry:
        yield pattern.sub(mask, carry)


def base64_encoded(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The base64 of the concatenated `chunks`, encoded in pieces of `ENCODE_CHUNK`."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        usable = len(pending) - len(pending) % ENCODE_CHUNK
        if usable:
            yield base64.b64encode(pending[:usable])
            pending = pending[usable:]
    if pending:
        yield base64.b64encode(pending)


def base64_chunks(path: Path) -> Iterator[bytes]:
    return base64_encoded(raw_chunks(path))


def raw_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
