#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# A stand-in for the uplink's "public" DNS server in the system tests
# (tests/system/container.sh): whatever it is asked, it answers, so a name that
# leaks to it gets an answer a test can recognise, and it logs every
# question so a test can count leaks.
#
#   dns-standin.py ADDR PORT LOGFILE
#
# UDP and TCP on ADDR:PORT. Answers: A -> 203.0.113.66, AAAA ->
# 2001:db8::66, PTR -> standin.example., anything else NOERROR without
# records; TTL 5. Each question is appended to LOGFILE as
# "NAME TYPE PROTO" (NAME lower-case, without the final dot), flushed at
# once. A malformed message is logged as "- malformed PROTO" and dropped.
import socket
import struct
import sys
import threading

ANSWER_A = socket.inet_pton(socket.AF_INET, "203.0.113.66")
ANSWER_AAAA = socket.inet_pton(socket.AF_INET6, "2001:db8::66")
PTR_NAME = b"\x07standin\x07example\x00"
TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
         33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}

log_lock = threading.Lock()


def log(f, line):
    with log_lock:
        f.write(line + "\n")
        f.flush()


def parse_question(msg):
    """Returns (name, qtype, end offset of the question) or None."""
    if len(msg) < 12 or struct.unpack("!H", msg[4:6])[0] != 1:
        return None
    labels = []
    off = 12
    while True:
        if off >= len(msg):
            return None
        n = msg[off]
        off += 1
        if n == 0:
            break
        if n > 63 or off + n > len(msg):
            return None
        labels.append(msg[off:off + n].decode("ascii", "replace").lower())
        off += n
    if off + 4 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[off:off + 2])[0]
    return ".".join(labels), qtype, off + 4


def answer(msg, q):
    name, qtype, end = q
    rdata = None
    if qtype == 1:
        rdata = ANSWER_A
    elif qtype == 28:
        rdata = ANSWER_AAAA
    elif qtype == 12:
        rdata = PTR_NAME
    flags = 0x8080 | (struct.unpack("!H", msg[2:4])[0] & 0x7900)  # QR RA; opcode, RD copied
    head = msg[0:2] + struct.pack("!HHHHH", flags, 1, 1 if rdata else 0, 0, 0)
    out = head + msg[12:end]
    if rdata:
        # The name as a pointer to the question (offset 12).
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 5, len(rdata)) + rdata
    return out


def serve_udp(sock, f):
    while True:
        msg, peer = sock.recvfrom(65535)
        q = parse_question(msg)
        if q is None:
            log(f, "- malformed udp")
            continue
        log(f, "%s %s udp" % (q[0], TYPES.get(q[1], str(q[1]))))
        sock.sendto(answer(msg, q), peer)


def serve_tcp_conn(conn, f):
    with conn:
        conn.settimeout(10)
        try:
            while True:
                head = conn.recv(2, socket.MSG_WAITALL)
                if len(head) < 2:
                    return
                n = struct.unpack("!H", head)[0]
                msg = conn.recv(n, socket.MSG_WAITALL)
                q = parse_question(msg) if len(msg) == n else None
                if q is None:
                    log(f, "- malformed tcp")
                    return
                log(f, "%s %s tcp" % (q[0], TYPES.get(q[1], str(q[1]))))
                out = answer(msg, q)
                conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return


def serve_tcp(sock, f):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_tcp_conn, args=(conn, f), daemon=True).start()


def main():
    if len(sys.argv) != 4:
        print("usage: dns-standin.py ADDR PORT LOGFILE", file=sys.stderr)
        return 2
    addr, port = sys.argv[1], int(sys.argv[2])
    f = open(sys.argv[3], "a", encoding="ascii")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(64)
    threading.Thread(target=serve_tcp, args=(tcp, f), daemon=True).start()
    print("dns-standin: serving %s:%d" % (addr, port), flush=True)
    serve_udp(udp, f)


if __name__ == "__main__":
    sys.exit(main())
