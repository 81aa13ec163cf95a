"""OSCAR's `/run` body and answer rules, on files (no server, no container)."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

import pytest

from oscarpy.engine.run import body
from oscarpy.engine.run.errors import InvalidBody


def staged(tmp_path: Path, content: bytes) -> bytes:
    raw, destination = tmp_path / "raw", tmp_path / "input"
    raw.write_bytes(content)
    body.stage_body(raw, destination)
    return destination.read_bytes()


def test_json_is_kept_as_it_is_even_when_it_is_also_base64(tmp_path: Path) -> None:
    document = json.dumps({"message": "hi"}).encode()

    assert staged(tmp_path, document) == document
    assert staged(tmp_path, b"1234") == b"1234"  # a JSON number, though valid base64 too


def test_base64_is_decoded_across_line_breaks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    wrapped = base64.encodebytes(data)  # 76-character lines

    assert staged(tmp_path, wrapped) == data


def test_large_bodies_are_decoded_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body, "CHUNK", 7)  # chunk edges fall inside quads and line breaks
    data = b"some binary \x00\x01 payload" * 50

    assert staged(tmp_path, base64.encodebytes(data)) == data


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not base64!", "character '!' is not base64"),
        (b"QUJD=", "length is not a multiple of 4"),
        (b"QQ==QUJD", "padding"),
    ],
)
def test_invalid_base64_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, why: str
) -> None:
    monkeypatch.setattr(body, "CHUNK", 4)  # also: padding in one chunk, data in the next
    with pytest.raises(InvalidBody, match=why):
        staged(tmp_path, content)
    assert not (tmp_path / "input").exists()


def test_a_large_json_body_is_recognised_without_parsing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body, "JSON_PARSE_LIMIT", 16)
    document = b'  {"values": [' + b"1," * 100 + b"1]}"

    assert staged(tmp_path, document) == document


def test_empty_body_gives_an_empty_input_file(tmp_path: Path) -> None:
    assert staged(tmp_path, b"") == b""


def test_answer_is_the_single_file_or_a_zip_of_several(tmp_path: Path) -> None:
    output = tmp_path / "output"
    (output / "sub").mkdir(parents=True)
    (output / "a.txt").write_text("a")
    (output / "sub" / "b.txt").write_text("b")

    assert body.answer_file(output, []) is None
    assert body.answer_file(output, ["a.txt"]) == output / "a.txt"
    archive = body.answer_file(output, ["a.txt", "sub/b.txt"])
    assert archive is not None
    with zipfile.ZipFile(archive) as zipped:
        assert {name: zipped.read(name) for name in zipped.namelist()} == {
            "a.txt": b"a",
            "sub/b.txt": b"b",
        }


def test_base64_answer_in_chunks_is_one_valid_text(tmp_path: Path) -> None:
    data = bytes(range(256)) * 3000  # several encoding chunks
    path = tmp_path / "out"
    path.write_bytes(data)

    text = b"".join(body.base64_chunks(path))

    assert base64.b64decode(text, validate=True) == data


def test_secrets_are_masked_even_across_chunk_boundaries() -> None:
    chunks = [b"token=sup", b"er-secret-1 and again super-secret-1", b" s", b"up"]
    masked = b"".join(body.masked(chunks, [b"super-secret-1", b"sup"]))
    assert masked == b"token=******** and again ******** ********"
    assert b"".join(body.masked(chunks, [])) == b"".join(chunks)


def test_base64_of_chunks_of_any_size_is_one_valid_text() -> None:
    data = bytes(range(256)) * 5000
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert base64.b64decode(b"".join(body.base64_encoded(pieces))) == data


def test_masking_in_one_byte_chunks_matches_masking_the_whole() -> None:
    text = b"a-secret-x secret secretsecret-x sec" * 3
    secrets = [b"secret", b"secret-x"]
    whole = b"".join(body.masked([text], secrets))
    assert whole == b"".join(body.masked([bytes([c]) for c in text], secrets))
    assert b"secret" not in whole
