#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# A plain DNS server on 127.0.0.1:53 (UDP) for the glibc tests, standing in
# for the "public" resolver of /etc/resolv.conf:
#
#     plain-dns.py NAME LOGFILE READYFILE
#
# Each query is appended to LOGFILE as "NAME QTYPE" (the name as asked, the
# type a number). NAME (any case) is answered with A 192.0.2.53 (TTL 60; no
# records for other types), every other name with NXDOMAIN. READYFILE is
# created once the socket is bound.
import socket
import sys

known = sys.argv[1].lower()
log = open(sys.argv[2], "a", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(sys.argv[3], "w").close()
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    i, labels = 12, []
    while i < len(q) and q[i] != 0 and len(labels) < 128:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    i += 1
    qtype = int.from_bytes(q[i:i + 2], "big")
    name = ".".join(labels)
    log.write(f"{name} {qtype}\n")
    rcode, answers, answer = 3, 0, b""
    if name.lower() == known:
        rcode = 0
        if qtype == 1:
            answers = 1
            answer = (b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") +
                      (60).to_bytes(4, "big") + (4).to_bytes(2, "big") + bytes([192, 0, 2, 53]))
    header = (q[0:2] + bytes([0x80 | (q[2] & 0x01), 0x80 | rcode]) + (1).to_bytes(2, "big") +
              answers.to_bytes(2, "big") + b"\0\0\0\0")
    s.sendto(header + q[12:i + 4] + answer, peer)
