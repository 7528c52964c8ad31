"""Whether the server can listen where it is told to, checked before anything else starts."""

import errno
import socket


class ListenError(Exception):
    """HOST and PORT name an address this process cannot listen on; the message says why."""


def check_can_listen(host: str, port: int, variable: str = "PORT") -> None:
    """Bind, and release, each address the server will bind; raise ListenError naming the fix.

    `variable` is the setting that chose the port (PORT for HTTP, GRPC_PORT for gRPC).
    """
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(
            f"HOST={host} is not an address or a name this machine can resolve ({exc.strerror}): "
            "use HOST=127.0.0.1 (this machine only) or HOST=0.0.0.0 (every interface)"
        ) from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            # As asyncio's create_server binds: reuse a port in TIME_WAIT, IPv6 separately.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ListenError(_reason(exc, host, port, variable)) from None


def _reason(exc: OSError, host: str, port: int, variable: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another server?): "
            f"choose another with {variable}, e.g. {variable}={port + 1}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"HOST={host} is not an address of this machine: use HOST=127.0.0.1 "
            "(this machine only) or HOST=0.0.0.0 (every interface)"
        )
    if exc.errno == errno.EACCES:
        return (
            f"port {port} needs root (ports below 1024 are privileged): "
            f"choose {variable}=1024 or above"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror}"
