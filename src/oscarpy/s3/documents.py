"""The XML documents of the S3 protocol: rendering answers and parsing request bodies."""

from __future__ import annotations

import hashlib
from datetime import datetime
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from oscarpy.s3.errors import S3Error
from oscarpy.storage.checksums import Checksum

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_REQUEST_DOCUMENT = 2 * 1024 * 1024


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def elements(**values: object) -> str:
    """Child elements in the order given; None values are left out, booleans are lower-case."""
    out = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(element(name, value))
    return "".join(out)


def document(root: str, body: str) -> bytes:
    return f'{HEADER}<{root} xmlns="{NAMESPACE}">{body}</{root}>'.encode()


def owner_id(username: str) -> str:
    """A stable canonical user id for the admin, shaped like S3's (64 hex digits)."""
    return hashlib.sha256(f"oscar-py:{username}".encode()).hexdigest()


def owner(username: str, tag: str = "Owner") -> str:
    return f"<{tag}>{elements(ID=owner_id(username), DisplayName=username)}</{tag}>"


def parse(body: bytes) -> ElementTree.Element:
    """Parse a request document, ignoring its namespace (clients differ in sending one)."""
    if len(body) > MAX_REQUEST_DOCUMENT:
        raise S3Error("MalformedXML", "the XML document is too large")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3Error("MalformedXML", "DTDs and entities are not accepted")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise S3Error(
            "MalformedXML", "the XML you provided was not well-formed or did not validate"
        ) from error
    for node in root.iter():
        if "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return root


def text_of(node: ElementTree.Element, name: str) -> str | None:
    child = node.find(name)
    return None if child is None else (child.text or "")


def checksum_elements(checksum: Checksum | None, *, with_type: bool = True) -> str:
    """`<ChecksumCRC32>...</ChecksumCRC32><ChecksumType>...</ChecksumType>` of a result."""
    if checksum is None:
        return ""
    return elements(**{checksum.element: checksum.value}) + (
        elements(ChecksumType=checksum.type) if with_type else ""
    )
