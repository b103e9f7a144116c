#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A DNS-over-TLS server that writes each answer in two pieces, for
tests/integration/test-upstream.sh.

  split-dot.py --listen PORT --cert PEM --key KEY

Every query gets an A record 192.0.2.7 for its name. The answer goes out as
two TLS records: first its two-byte length, then the message (RFC 7766
8 asks servers not to, and some do), with Nagle's algorithm left on. The
kernel then holds the second record until the client ACKs the first: a
client that leaves that ACK to its delayed-ACK timer waits up to 40 ms for
every answer.
"""

import argparse
import socket
import ssl
import struct
import threading

from dnsframe import recv_exact


def answer(query):
    """The A answer to `query`, or None for something that is no query."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    end = 12
    while end < len(query) and query[end] != 0:
        end += 1 + query[end]
    end += 5  # the root label, type, class
    if end > len(query):
        return None
    question = query[12:end]
    rd = flags & 0x0100
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd, 1, 1, 0, 0)
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + bytes([192, 0, 2, 7])
    return header + question + rr


def serve(conn):
    try:
        while True:
            (n,) = struct.unpack("!H", recv_exact(conn, 2))
            msg = answer(recv_exact(conn, n))
            if msg is None:
                break
            conn.sendall(struct.pack("!H", len(msg)))
            conn.sendall(msg)
    except (EOFError, OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", a.listen))
    lsock.listen(16)
    while True:
        raw, _ = lsock.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
