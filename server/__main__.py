"""`python -m server`: run the app with uvicorn, configured from the environment."""

import asyncio
import logging
import sys

import uvicorn

from server.app import create_app
from server.logs import configure_logging
from server.settings import Settings, SettingsError

log = logging.getLogger("server")


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    log.info(
        "starting",
        extra={"model_uri": settings.model_uri, "port": settings.port, "workers": settings.workers},
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=25,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
