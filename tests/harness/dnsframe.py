# SPDX-License-Identifier: MIT
"""DNS over TCP (and over TLS, on an ssl socket) framing for the harness
scripts in this folder: each message goes with its two-byte length
(RFC 1035 4.2.2). Imported by stub-client.py and split-dot.py, which
Python finds beside them."""

import socket
import struct


def recv_exact(s, n):
    """Exactly n bytes from s; EOFError if it closes first."""
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError
        buf += d
    return buf


def tcp_read(s):
    (n,) = struct.unpack("!H", recv_exact(s, 2))
    return recv_exact(s, n)


def tcp_send(s, msg):
    """Sends msg with its two-byte length, as DNS over TCP frames it."""
    s.sendall(struct.pack("!H", len(msg)) + msg)


def peer_closed(s):
    """The other end closed (or reset) s without sending anything more; False
    when data came or the socket's timeout passed first."""
    try:
        return s.recv(10) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def tcp_ask(s, msg):
    """Sends msg framed and returns the next answer on s."""
    tcp_send(s, msg)
    return tcp_read(s)
