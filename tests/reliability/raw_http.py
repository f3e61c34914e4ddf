"""HTTP/1.1 on a raw socket, for what an HTTP client will not do: hold a connection idle, stop mid-request,
send only the head."""

from __future__ import annotations

import re
import socket

from bench.servers import Server


def connect(server: Server, timeout: float = 30) -> socket.socket:
    """A new TCP connection to the server on 127.0.0.1."""
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(status line and headers, body) of the next response on the connection, its body read to Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += recv_some(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    assert length, head
    while len(body) < int(length.group(1)):
        body += recv_some(sock)
    return head, body


def recv_some(sock: socket.socket) -> bytes:
    """The next bytes the server sent; AssertionError if it closed the connection instead."""
    chunk = sock.recv(65536)
    assert chunk, "the server closed the connection"
    return chunk
