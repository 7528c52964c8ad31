"""Raw sockets for the clients httpx will not imitate: byte-by-byte bodies, half-sent requests."""

import socket
import time


def open_request(url: str, path: str, body_length: int, headers: str = "") -> socket.socket:
    """Connect and send a POST's headers announcing `body_length` bytes; the body is up to you."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {body_length}\r\n{headers}\r\n"
        ).encode()
    )
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of one response (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def trickle(sock: socket.socket, body: bytes, seconds_per_byte: float) -> bool:
    """Send `body` one byte at a time; False when the server closed the connection first."""
    for i in range(len(body)):
        try:
            sock.sendall(body[i : i + 1])
        except OSError:
            return False
        time.sleep(seconds_per_byte)
    return True
