#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A TCP relay for tests/integration/test-upstream.sh, which sees TLS only as bytes.

  tcp-proxy.py --listen PORT --connect PORT   relays to 127.0.0.1:PORT
  tcp-proxy.py --listen PORT --blackhole      accepts and never answers
  tcp-proxy.py ... --connect PORT --delay SECONDS --delay-file PATH
                                              while PATH exists, holds the
                                              first bytes the server sends on
                                              each connection SECONDS first

Either way it counts the connections it accepted and writes the count to
--count-file after each one, so a test can tell whether queries shared a
connection. A black-holed connection stays open until the client gives up.
"""

import argparse
import os
import socket
import threading
import time


def write_count(path, n):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % n)
    os.replace(tmp, path)


def pipe(src, dst, delay=0.0, delay_file=None):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if delay_file and os.path.exists(delay_file):
                time.sleep(delay)
                delay_file = None  # once per connection
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--connect", type=int)
    p.add_argument("--blackhole", action="store_true")
    p.add_argument("--count-file")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--delay-file")
    a = p.parse_args()

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.listen))
    ls.listen(64)
    write_count(a.count_file, 0)
    held = []
    n = 0
    while True:
        c, _ = ls.accept()
        n += 1
        write_count(a.count_file, n)
        if a.blackhole:
            held.append(c)
            continue
        try:
            up = socket.create_connection(("127.0.0.1", a.connect))
        except OSError:
            c.close()
            continue
        threading.Thread(target=pipe, args=(c, up), daemon=True).start()
        threading.Thread(target=pipe, args=(up, c, a.delay, a.delay_file), daemon=True).start()


if __name__ == "__main__":
    main()
