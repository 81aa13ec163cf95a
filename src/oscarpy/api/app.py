"""The REST API application: the OSCAR routes, their authentication and error mapping.

The dashboard is mounted beside it by `oscarpy.server`, so that this edge imports no other."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp

from oscarpy import __version__
from oscarpy.api import (
    buckets,
    exposed,
    images,
    jobs,
    logs,
    metrics,
    openapi,
    run,
    services,
    system,
)
from oscarpy.api.auth import install_throttle
from oscarpy.api.errors import install_error_handlers
from oscarpy.api.origin import CrossSiteGuard
from oscarpy.api.slashes import StripTrailingSlash
from oscarpy.auth.cors import with_cors
from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.oidc import OidcVerifier
from oscarpy.auth.users import Users
from oscarpy.config import Settings
from oscarpy.db import Database


def create_app(settings: Settings, database: Database, admin: AdminCredentials) -> FastAPI:
    app = FastAPI(
        title="oscar-py",
        version=__version__,
        description="OSCAR-compatible API for event-driven file processing in containers.",
        redirect_slashes=False,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.admin = admin
    app.state.users = Users(database)
    app.state.oidc = OidcVerifier.from_settings(settings)

    @app.get("/health", response_class=PlainTextResponse, tags=["system"])
    def health() -> str:
        """Liveness check; the only route that needs no credentials."""
        return "Ok"

    app.include_router(system.router)
    app.include_router(images.router)
    app.include_router(services.router)
    app.include_router(buckets.router)
    app.include_router(exposed.lifecycle)
    app.include_router(exposed.proxy)
    app.include_router(jobs.router)
    app.include_router(logs.router)
    app.include_router(run.router)
    app.include_router(metrics.router)
    app.include_router(metrics.usage_router)
    install_error_handlers(app)
    install_throttle(app, settings, database)
    openapi.document(app)
    openapi.serve(app, interactive=settings.api_docs)
    app.add_middleware(StripTrailingSlash)
    app.add_middleware(
        CrossSiteGuard,
        trusted_origins=settings.trusted_origin_list,
        cors_origins=settings.cors_origin_list,
    )
    cors = settings.cors_origin_list
    if cors:
        app.add_middleware(with_cors_middleware, origins=cors)
    return app


def with_cors_middleware(app: ASGIApp, origins: list[str]) -> ASGIApp:
    """`with_cors` as Starlette's `add_middleware` takes it: outermost, so that preflights are
    answered before the cross-site guard and authentication."""
    return with_cors(app, origins, expose=("Content-Length", "Content-Disposition", "Retry-After"))
