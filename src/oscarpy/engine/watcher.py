"""Polling for external storage that sends no notifications (`OSCAR_STORAGE_WATCH_INTERVAL`).

Every interval, each service input on an external provider (`minio.<id>`, `s3.<id>`,
`webdav.<id>`) is listed and every object whose content has no job yet gets one: the reconcile
pass on a timer. What was seen is the ledger's (jobs by service, bucket, key and ETag, and the
expired ones), so a restart neither loses nor repeats anything. The embedded store needs none of
this: its commits start jobs themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from oscarpy.periodic import Periodic
from oscarpy.services.model import Service
from oscarpy.storage.providers.base import StorageError

log = logging.getLogger(__name__)


class StorageWatcher:
    def __init__(
        self,
        interval: float,
        services: Callable[[], list[Service]],
        reconcile: Callable[[Service], int],
    ) -> None:
        self._services = services
        self._reconcile = reconcile
        self._periodic = Periodic("watcher", interval, self._turn)

    def start(self) -> None:
        if self._periodic.interval > 0:
            self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _turn(self) -> None:
        for service in self._services():
            if self._periodic.stopping:
                return
            if all(service.uses_embedded_store(path) for path in service.input):
                continue
            self.poll(service)

    def poll(self, service: Service) -> int:
        """One pass over `service`'s inputs; a storage that fails is tried again next time."""
        try:
            created = self._reconcile(service)
        except StorageError as error:
            log.warning("watching the inputs of %s failed: %s", service.name, error)
            return 0
        except Exception:
            log.exception("watching the inputs of %s failed", service.name)
            return 0
        if created:
            log.info("service %s: %d new file(s) in its external inputs", service.name, created)
        return created
