#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# A steady stream of UDP DNS queries, for the system tests' restart and
# reload parts (tests/system/test-system.sh): run inside the container while the
# daemon is restarted, it counts the queries that got no answer.
#
#   system-query-loop.py ADDR PORT NAME INTERVAL_MS TIMEOUT_MS STOPFILE
#
# Sends one A query for NAME every INTERVAL_MS to ADDR:PORT, each from a
# socket of its own, and waits up to TIMEOUT_MS for its answer (no
# retries). Stops when STOPFILE exists (or after 10 minutes) and prints
# "sent N answered N lost N servfail N", then one "lost-at SECONDS" line
# per lost query (seconds since the start).
import os
import random
import socket
import struct
import sys
import time


def query(name):
    qid = random.randrange(65536)
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return qid, struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", 1, 1)


def main():
    if len(sys.argv) != 7:
        print("usage: system-query-loop.py ADDR PORT NAME INTERVAL_MS TIMEOUT_MS STOPFILE", file=sys.stderr)
        return 2
    addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    interval, timeout = int(sys.argv[4]) / 1000, int(sys.argv[5]) / 1000
    stop = sys.argv[6]
    sent = answered = servfail = 0
    lost = []
    start = time.monotonic()
    while not os.path.exists(stop) and time.monotonic() - start < 600:
        t0 = time.monotonic()
        qid, msg = query(name)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        sent += 1
        got = False
        try:
            s.sendto(msg, (addr, port))
            while True:
                data = s.recv(4096)
                if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                    got = True
                    if data[3] & 0x0F == 2:
                        servfail += 1
                    break
        except OSError:
            pass
        finally:
            s.close()
        if got:
            answered += 1
        else:
            lost.append(t0 - start)
        rest = interval - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
    print("sent %d answered %d lost %d servfail %d" % (sent, answered, len(lost), servfail))
    for t in lost:
        print("lost-at %.3f" % t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
