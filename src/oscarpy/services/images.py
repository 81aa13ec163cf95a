"""The image allow-list (OSCAR's `allowed_image_repositories`): when it is not empty, a service
may only use an image whose name starts with one of its entries.

Kept in the state DB (`system_meta`), so every server process sharing it refuses the same
images. OSCAR accepts an image that merely *contains* an entry; here the entry must be a prefix,
so that `evil.example/ghcr.io/grycap/x` does not pass for `ghcr.io/grycap/`.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from oscarpy.db import Database, SystemMeta
from oscarpy.services.errors import ServiceDefinitionError

__all__ = ["AllowedImages"]

_KEY = "allowed_image_repositories"
_MAX_STORED = 1024  # the width of system_meta.value


class AllowedImages:
    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self) -> list[str]:
        with self.database.session() as session:
            found = session.scalar(select(SystemMeta.value).where(SystemMeta.key == _KEY))
        entries = json.loads(found) if found else []
        return [str(entry) for entry in entries] if isinstance(entries, list) else []

    def set(self, entries: list[str]) -> list[str]:
        """Replace the list (empty: every image is allowed); raises `ServiceDefinitionError`."""
        cleaned = [entry.strip() for entry in entries if entry.strip()]
        text = json.dumps(cleaned)
        if len(text) > _MAX_STORED:
            raise ServiceDefinitionError(
                f"allowed_image_repositories: {len(text)} characters as JSON; at most "
                f"{_MAX_STORED} are kept: use shorter prefixes"
            )
        with self.database.session() as session:
            row = session.get(SystemMeta, _KEY)
            if row is None:
                session.add(SystemMeta(key=_KEY, value=text))
            else:
                row.value = text
        return cleaned

    def check(self, image: str) -> None:
        """Raise `ServiceDefinitionError` naming the list when `image` is not on it."""
        entries = self.get()
        if entries and not any(image.startswith(entry) for entry in entries):
            raise ServiceDefinitionError(
                f"image: {image!r} is not allowed on this cluster; allowed_image_repositories "
                f"are {', '.join(entries)} (PUT /system/config changes them)"
            )
