"""Which `StorageProvider` a provider name of a service means.

`minio.default` is the embedded store unless the service defines its own `minio.default`;
other `minio.<id>` and `s3.<id>` entries are external endpoints reached through boto3, and
`webdav.<id>` a WebDAV server. Clients are kept per endpoint and credentials, since creating one
costs more than a small transfer.
"""

from __future__ import annotations

import hashlib
import threading

from oscarpy.services.model import DEFAULT_PROVIDER, Service, WebdavProviderConfig
from oscarpy.storage.providers.base import StorageError, StorageProvider
from oscarpy.storage.providers.embedded import EmbeddedProvider
from oscarpy.storage.providers.webdav import WebdavProvider
from oscarpy.storage.store import ObjectStore

ProviderKey = tuple[str, str | None, str, str, str, bool]


def _fingerprint(*secrets: str) -> str:
    return hashlib.sha256("\0".join(secrets).encode()).hexdigest()


class Providers:
    def __init__(self, store: ObjectStore) -> None:
        self.embedded = EmbeddedProvider(store)
        self._external: dict[ProviderKey, StorageProvider] = {}
        self._lock = threading.Lock()

    @staticmethod
    def is_embedded(service: Service, name: str) -> bool:
        return name == DEFAULT_PROVIDER and "default" not in service.storage_providers.minio

    def resolve(self, service: Service, name: str) -> StorageProvider:
        if self.is_embedded(service, name):
            return self.embedded
        kind, _, identifier = name.partition(".")
        providers = service.storage_providers
        if kind == "minio" and identifier in providers.minio:
            minio = providers.minio[identifier]
            return self._client(
                name, minio.endpoint, minio.access_key, minio.secret_key, minio.region, minio.verify
            )
        if kind == "s3" and identifier in providers.s3:
            s3 = providers.s3[identifier]
            return self._client(name, None, s3.access_key, s3.secret_key, s3.region, True)
        if kind == "webdav" and identifier in providers.webdav:
            return self._webdav(name, providers.webdav[identifier])
        raise StorageError(
            f"storage provider {name} of service {service.name} cannot be used for staging "
            "(defined? only minio, s3 and webdav providers are supported)"
        )

    def close(self) -> None:
        """Close the WebDAV clients' connections (boto3 clients hold none worth closing)."""
        with self._lock:
            for provider in self._external.values():
                if isinstance(provider, WebdavProvider):
                    provider.close()
            self._external.clear()

    def _webdav(self, name: str, settings: WebdavProviderConfig) -> StorageProvider:
        fingerprint = _fingerprint(settings.login, settings.password)
        key: ProviderKey = (name, settings.hostname, fingerprint, "", "webdav", True)
        with self._lock:
            found = self._external.get(key)
            if found is None:
                found = WebdavProvider(
                    hostname=settings.hostname,
                    login=settings.login,
                    password=settings.password,
                    name=name,
                )
                self._external[key] = found
            return found

    def _client(
        self,
        name: str,
        endpoint: str | None,
        access_key: str,
        secret_key: str,
        region: str,
        verify: bool,
    ) -> StorageProvider:
        fingerprint = _fingerprint(access_key, secret_key)
        key: ProviderKey = (name, endpoint, fingerprint, region, "", verify)
        with self._lock:
            found = self._external.get(key)
            if found is None:
                # Imported here: boto3 takes long to import and most services never need it.
                from oscarpy.storage.providers.s3 import S3Provider

                found = S3Provider(
                    endpoint=endpoint or None,
                    access_key=access_key,
                    secret_key=secret_key,
                    region=region,
                    verify=verify,
                    name=name,
                )
                self._external[key] = found
            return found
