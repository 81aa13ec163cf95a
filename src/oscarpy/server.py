"""The composition root: builds every component from the settings and runs them in one process.

`run` binds both listening sockets before anything else, so that a taken port is reported
at once and clearly, then serves the REST API and the S3 front-end on one event loop until
SIGINT or SIGTERM asks it to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from starlette.types import ASGIApp

from oscarpy.api import metrics as api_metrics
from oscarpy.api.app import create_app
from oscarpy.auth.credentials import (
    AdminCredentials,
    CredentialsError,
    credentials_path,
    load_or_create_admin,
    read_credentials_file,
    record_endpoints,
)
from oscarpy.config import Settings
from oscarpy.connections import ConnectionLimits
from oscarpy.db import Database
from oscarpy.engine import Engine, EngineError
from oscarpy.engine.exposed import for_runtime as exposed_services
from oscarpy.engine.run import Runner
from oscarpy.instances import Instances
from oscarpy.observability import Observability
from oscarpy.s3.app import create_s3_app
from oscarpy.s3.metrics import instrument
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.store import ObjectStore
from oscarpy.web.router import mount_dashboard

log = logging.getLogger("oscarpy.server")


class StartupError(RuntimeError):
    """The platform cannot start; the message says why and what to change."""


class BackgroundService(Protocol):
    """A component with its own threads (the job engine) started after the listeners."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


PRIVATE_UMASK = 0o077
"""Everything the server creates is its user's alone: files 0600, directories 0700."""


def prepare_data_dir(path: Path) -> None:
    """Create the data directory private to this user (0700), and make an existing one so:
    what is inside (state DB, blobs, job bodies, credentials) is then out of other local
    users' reach, whatever the modes of the files an older version wrote."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid == os.geteuid():
            os.chmod(path, 0o700)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise StartupError(
            f"data directory {path} is not writable ({error.strerror or error}); "
            "choose another with --data-dir or OSCAR_DATA_DIR"
        ) from error


def bind_listener(host: str, port: int, purpose: str, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every response written in two parts waits ~40 ms for the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            reason = "is already in use by another program"
        elif error.errno == errno.EACCES:
            reason = "needs privileges this user does not have"
        else:
            reason = f"cannot be opened ({error.strerror or error})"
        raise StartupError(
            f"cannot listen for the {purpose} on {host}:{port}: the port {reason}; "
            f"choose another with {flag}"
        ) from error
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `Platform`, which runs two of them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Platform:
    """Everything `oscar serve` runs, built from one `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        os.umask(PRIVATE_UMASK)
        prepare_data_dir(settings.data_dir)
        try:
            self.admin: AdminCredentials = load_or_create_admin(settings)
        except CredentialsError as error:
            raise StartupError(str(error)) from error
        self.first_start_password = self.admin.generated and not _announced(settings)
        self.api_socket = bind_listener(settings.host, settings.port, "REST API", "--port")
        try:
            self.s3_socket = bind_listener(settings.host, settings.s3_port, "S3 API", "--s3-port")
        except StartupError:
            self.api_socket.close()
            raise
        self.database = Database(settings.state_database_url)
        try:
            self.database.migrate()
        except Exception as error:
            self.close_sockets()
            raise StartupError(
                f"cannot open the state DB {self.database.describe()}: {error}"
            ) from error
        # Registered before anything is written, so that no other process sharing the state DB
        # takes this one's uploads or jobs for a dead process's.
        self.instances = Instances(self.database, settings.job_lease_seconds)
        self.instances.start()
        self.store = ObjectStore(self.database, settings.data_dir, self.instances.token)
        self.registry = ServiceRegistry(self.database, self.store)
        self.registry.gpu_optional = settings.gpu == "optional"
        self.registry.gpu_on_nodes = settings.runtime == "swarm"
        try:
            self.engine = Engine(
                settings, self.database, self.store, self.registry, instances=self.instances
            )
            self.runner = Runner(settings, self.engine)
        except EngineError as error:
            self.instances.stop()
            self.close_sockets()
            raise StartupError(str(error)) from error
        self.observability = Observability(
            settings, self.database, self.registry, self.runner.pools.counts, self.engine.nodes
        )
        self.engine.ledger.add_finish_listener(self.observability.attempt_finished)
        api_app = create_app(settings, self.database, self.admin)
        mount_dashboard(api_app, self.admin)
        api_metrics.install(api_app, self.observability)
        api_app.state.store = self.store
        api_app.state.registry = self.registry
        api_app.state.engine = self.engine
        api_app.state.runner = self.runner
        self.exposed = exposed_services(
            settings, self.registry, self.engine.runtime, self.engine.instance
        )
        api_app.state.exposed = self.exposed
        api_app.state.s3_endpoint = self.s3_endpoint
        self.api_app: ASGIApp = api_app
        # One throttle for both ports: failed S3 signatures and Basic passwords add up.
        self.s3_app: ASGIApp = instrument(
            create_s3_app(
                self.store,
                self.admin,
                settings,
                throttle=api_app.state.throttle,
                users=api_app.state.users,
            ),
            self.observability.metrics,
        )
        # The history starts first and stops last, to keep what the others report on stopping.
        self.background: list[BackgroundService] = [
            self.observability,
            self.engine,
            self.runner,
            self.exposed,
        ]

    @property
    def api_endpoint(self) -> str:
        return self.settings.api_endpoint(self.api_socket.getsockname()[1])

    @property
    def s3_endpoint(self) -> str:
        return self.settings.s3_endpoint(self.s3_socket.getsockname()[1])

    def close_sockets(self) -> None:
        self.api_socket.close()
        self.s3_socket.close()

    def run(self) -> None:
        try:
            _run_event_loop(self._serve())
        finally:
            for service in reversed(self.background):
                service.stop()
            self.instances.stop()
            self.database.close()
            self.close_sockets()
        log.info("stopped")

    async def _serve(self) -> None:
        servers = [self._uvicorn(self.api_app), self._uvicorn(self.s3_app)]
        loop = asyncio.get_running_loop()

        def request_exit(signum: int) -> None:
            # A second Ctrl-C forces exit; a repeated SIGTERM (sent to the whole process group
            # by `timeout`, say) only asks again for the same graceful shutdown.
            if servers[0].should_exit:
                if signum == signal.SIGINT:
                    log.warning("second interrupt, forcing exit")
                    for server in servers:
                        server.force_exit = True
                return
            log.info("received %s, shutting down", signal.Signals(signum).name)
            for server in servers:
                server.should_exit = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, request_exit, signum)
        for service in self.background:
            service.start()
        self._announce()
        await asyncio.gather(
            servers[0].serve(sockets=[self.api_socket]),
            servers[1].serve(sockets=[self.s3_socket]),
        )

    def _uvicorn(self, app: ASGIApp) -> _Server:
        limits = ConnectionLimits(
            header_timeout=self.settings.header_timeout,
            body_timeout=self.settings.body_timeout,
            per_address=self.settings.waiting_connections_per_address,
            total=self.settings.waiting_connections,
        )
        config = uvicorn.Config(
            app,
            http=limits.protocol(),
            log_config=None,
            access_log=self.settings.log_level == "DEBUG",
            timeout_graceful_shutdown=3,
            proxy_headers=False,
            server_header=False,
        )
        return _Server(config)

    def _announce(self) -> None:
        log.info("state DB: %s", self.database.describe())
        log.info("data directory: %s", self.settings.data_dir)
        log.info("REST API on %s, S3 API on %s", self.api_endpoint, self.s3_endpoint)
        if self.admin.generated:
            record_endpoints(self.settings, self.api_endpoint, self.s3_endpoint)
        if self.first_start_password:
            # Printed, never logged: the log masks the password, and a user needs it once.
            print(
                f"\noscar-py is running at {self.api_endpoint} (S3 at {self.s3_endpoint})\n"
                f"  user:     {self.admin.username}\n"
                f"  password: {self.admin.password}\n"
                f"Stored in {credentials_path(self.settings.data_dir)} (mode 0600); "
                "it is not shown again.\n",
                flush=True,
            )
        elif self.admin.generated:
            log.info("admin password stored in %s", credentials_path(self.settings.data_dir))


def _announced(settings: Settings) -> bool:
    """Whether an earlier start already printed the generated password (it then noted endpoints)."""
    return "endpoint" in (read_credentials_file(credentials_path(settings.data_dir)) or {})


def run(settings: Settings) -> None:
    Platform(settings).run()


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when installed (uvicorn[standard] brings it): its I/O loop costs less CPU
    per request than asyncio's, which bounds the rate of small S3 requests."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
