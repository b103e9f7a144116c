#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw-socket DNS clients for tests/integration/test-stub.sh: what dig and kdig will not
send (broken packets, pipelined TCP, floods, foreign source addresses), and
socket activation by hand.

    stub-client.py malformed ADDR PORT        broken queries; the stub keeps answering
    stub-client.py pipeline ADDR PORT         several queries on one TCP connection
    stub-client.py idle ADDR PORT MAX_SECONDS an idle TCP connection is closed in time
    stub-client.py limit ADDR PORT N          connection N+1 is refused, the first N work
    stub-client.py burst ADDR PORT N          N UDP queries at once, every one answered
    stub-client.py source SRC ADDR PORT       from a non-loopback source: no answer
    stub-client.py activate ADDR PORT CMD...  exec CMD with UDP+TCP sockets as LISTEN_FDS
    stub-client.py occupy ADDR PORT udp|tcp   hold the port until killed
    stub-client.py loop ADDR PORT NAME [QTYPE]  one UDP query (A, or QTYPE by number) at a time until SIGTERM
                                              or SIGINT, then a tally (below)

loop: a query that has no answer within 2 s counts as lost (it is not
asked again), a refused one too; every 5 ms a new one goes out. On
SIGTERM or SIGINT it prints one line and exits 0:
    sent N answered N lost N NOERROR=N SERVFAIL=N NXDOMAIN=N ... first_answer_ms=T

Prints "ok - ..." / "not ok - ..." lines; exits 1 when any check failed.
"""
import os
import random
import select
import socket
import struct
import sys
import time

from dnsframe import peer_closed, tcp_ask, tcp_read, tcp_send

failures = 0


def report(ok, what):
    global failures
    print(("ok - " if ok else "not ok - ") + what, flush=True)
    if not ok:
        failures += 1


def name_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(name, qtype=1, qid=None, flags=0x0100, qdcount=1, edns=True, extra=b""):
    qid = random.randrange(65536) if qid is None else qid
    msg = struct.pack("!6H", qid, flags, qdcount, 0, 0, 1 if edns else 0)
    msg += name_wire(name) + struct.pack("!HH", qtype, 1) + extra
    if edns:
        msg += b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return qid, msg


def header(msg):
    qid, flags, qd, an, ns, ar = struct.unpack("!6H", msg[:12])
    return {"id": qid, "flags": flags, "rcode": flags & 15, "qd": qd, "an": an, "ns": ns, "ar": ar,
            "tc": bool(flags & 0x0200), "qr": bool(flags & 0x8000)}


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def udp_exchange(addr, port, msg, timeout=2.0, source=None):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    s.sendto(msg, (addr, port))
    try:
        return s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()


def alive(addr, port, what):
    qid, msg = query("win-a.yourorg.zt.net")
    r = udp_exchange(addr, port, msg)
    report(r is not None and header(r)["id"] == qid and header(r)["an"] == 1, "still answering after " + what)


def malformed(addr, port):
    rng = random.Random(8482)
    # random bytes: answered FORMERR (readable header) or dropped, never a crash
    answered = 0
    for i in range(200):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        r = udp_exchange(addr, port, junk, timeout=0.05)
        if r is not None:
            answered += 1
            h = header(r)
            if not (len(junk) >= 12 and h["id"] == struct.unpack("!H", junk[:2])[0] and h["qr"] and
                    not junk[2] & 0x80):
                report(False, "an answer to random bytes that is not a reply to them: %s" % junk.hex())
    report(True, "200 random datagrams: %d answered (FORMERR or NOTIMP), none crashed the stub" % answered)
    alive(addr, port, "random bytes")

    # QDCOUNT 2
    qid, msg = query("win-a.yourorg.zt.net", edns=False, qdcount=2,
                     extra=name_wire("linux-c.yourorg.zt.net") + struct.pack("!HH", 1, 1))
    r = udp_exchange(addr, port, msg)
    report(r is not None and header(r)["rcode"] == 1 and header(r)["id"] == qid and header(r)["qd"] == 0,
           "QDCOUNT=2 -> FORMERR with the query's ID")
    # QDCOUNT 0
    qid = 0x3131
    r = udp_exchange(addr, port, struct.pack("!6H", qid, 0x0100, 0, 0, 0, 0))
    report(r is not None and header(r)["rcode"] == 1 and header(r)["id"] == qid, "QDCOUNT=0 -> FORMERR")
    # truncated in the question
    qid, msg = query("win-a.yourorg.zt.net", edns=False)
    r = udp_exchange(addr, port, msg[:20])
    report(r is not None and header(r)["rcode"] == 1 and header(r)["id"] == qid and len(r) == 12,
           "a question cut short -> FORMERR, header only")
    # a compression loop in the question
    r = udp_exchange(addr, port, struct.pack("!6H", 0x4444, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01")
    report(r is not None and header(r)["rcode"] == 1, "a pointer loop in the question -> FORMERR")
    # trailing garbage
    qid, msg = query("win-a.yourorg.zt.net", edns=False)
    r = udp_exchange(addr, port, msg + b"\xff")
    report(r is not None and header(r)["rcode"] == 1, "a byte after the last section -> FORMERR")
    # over 4 KiB over UDP: dropped unread (TCP takes any size)
    qid, msg = query("win-a.yourorg.zt.net", edns=False)
    r = udp_exchange(addr, port, msg + b"\0" * 5000, timeout=0.5)
    report(r is None, "a 5 KB UDP datagram -> no answer")
    # shorter than a header: dropped
    r = udp_exchange(addr, port, b"\x12\x34\x01\x00\x00", timeout=0.5)
    report(r is None, "five bytes -> no answer")
    # a response (QR set): never answered
    qid, msg = query("win-a.yourorg.zt.net", flags=0x8180)
    r = udp_exchange(addr, port, msg, timeout=0.5)
    report(r is None, "a response sent as a query -> no answer")
    # opcode NOTIFY (4)
    qid, msg = query("win-a.yourorg.zt.net", flags=4 << 11)
    r = udp_exchange(addr, port, msg)
    report(r is not None and header(r)["rcode"] == 4, "opcode NOTIFY -> NOTIMP")
    # AXFR over UDP
    qid, msg = query("yourorg.zt.net", qtype=252)
    r = udp_exchange(addr, port, msg)
    report(r is not None and header(r)["rcode"] == 4, "AXFR -> NOTIMP")
    alive(addr, port, "broken queries")

    # the same over TCP: a zero-length frame closes the connection
    s = socket.create_connection((addr, port), timeout=2)
    s.sendall(b"\0\0")
    closed = peer_closed(s)
    report(closed, "TCP: a zero-length message closes the connection")
    s.close()
    s = socket.create_connection((addr, port), timeout=2)
    qid, msg = query("win-a.yourorg.zt.net", edns=False, qdcount=2)
    r = tcp_ask(s, msg)
    report(header(r)["rcode"] == 1 and header(r)["id"] == qid, "TCP: a broken query -> FORMERR, connection kept")
    qid, msg = query("win-a.yourorg.zt.net")
    r = tcp_ask(s, msg)
    report(header(r)["id"] == qid and header(r)["an"] == 1, "TCP: the next query on it is answered")
    s.close()
    alive(addr, port, "broken TCP")


def pipeline(addr, port):
    s = socket.create_connection((addr, port), timeout=3)
    names = ["win-a.yourorg.zt.net", "linux-c.yourorg.zt.net", "www.example.test", "nobody.yourorg.zt.net",
             "x.bad.example"]
    want = {}
    data = b""
    for n in names:
        qid, msg = query(n)
        want[qid] = n
        data += struct.pack("!H", len(msg)) + msg
    s.sendall(data)  # all at once, in one segment
    got = {}
    for _ in names:
        r = tcp_read(s)
        got[header(r)["id"]] = header(r)["rcode"]
    report(set(got) == set(want), "TCP: %d pipelined queries in one write, %d answers by ID" % (len(want), len(got)))
    report(got.get([k for k, v in want.items() if v == "nobody.yourorg.zt.net"][0]) == 3 and
           got.get([k for k, v in want.items() if v == "x.bad.example"][0]) == 3,
           "TCP: the pipelined NXDOMAINs are NXDOMAIN")
    # one query dribbled a byte at a time
    qid, msg = query("win-a.yourorg.zt.net")
    for b in struct.pack("!H", len(msg)) + msg:
        s.send(bytes([b]))
        time.sleep(0.002)
    r = tcp_read(s)
    report(header(r)["id"] == qid and header(r)["an"] == 1, "TCP: a query sent one byte at a time")
    # half-close after a query: the answer still comes
    qid, msg = query("linux-c.yourorg.zt.net")
    tcp_send(s, msg)
    s.shutdown(socket.SHUT_WR)
    r = tcp_read(s)
    report(header(r)["id"] == qid, "TCP: the answer comes after the client's half-close")
    eof = peer_closed(s)
    report(eof, "TCP: then the stub closes")
    s.close()


def idle(addr, port, max_seconds):
    s = socket.create_connection((addr, port), timeout=max_seconds + 5)
    t0 = time.monotonic()
    closed = peer_closed(s)
    took = time.monotonic() - t0
    report(closed and took <= max_seconds, "TCP: an idle connection is closed after %.1f s" % took)


def limit(addr, port, n):
    held = [socket.create_connection((addr, port), timeout=2) for _ in range(n)]
    time.sleep(0.3)
    extra = socket.create_connection((addr, port), timeout=2)
    refused = peer_closed(extra)
    report(refused, "TCP: connection %d of a limit of %d is closed at once" % (n + 1, n))
    extra.close()
    answered = 0
    for s in held:
        qid, msg = query("win-a.yourorg.zt.net")
        if header(tcp_ask(s, msg))["id"] == qid:
            answered += 1
    report(answered == n, "TCP: the %d connections within the limit are served" % n)
    for s in held:
        s.close()
    time.sleep(0.3)
    s = socket.create_connection((addr, port), timeout=2)
    qid, msg = query("win-a.yourorg.zt.net")
    report(header(tcp_ask(s, msg))["id"] == qid, "TCP: closed connections free their slots")
    s.close()


def burst(addr, port, n):
    socks = [socket.socket(family(addr), socket.SOCK_DGRAM) for _ in range(8)]
    want = {}
    names = ["win-a.yourorg.zt.net", "linux-c.yourorg.zt.net", "www.example.test", "nobody.yourorg.zt.net"]
    for i in range(n):
        qid, msg = query(names[i % len(names)], qid=i)
        s = socks[i % len(socks)]
        want[(s.fileno(), i)] = True
        s.sendto(msg, (addr, port))
        if i % 64 == 63:
            time.sleep(0.01)  # stay within the socket buffers
    got = set()
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        ready, _, _ = select.select(socks, [], [], 0.2)
        for s in ready:
            r = s.recv(65535)
            got.add((s.fileno(), header(r)["id"]))
    report(len(got) == n and set(got) == set(want), "UDP: %d of %d queries sent at once answered" % (len(got), n))


def source(src, addr, port):
    qid, msg = query("win-a.yourorg.zt.net")
    r = udp_exchange(addr, port, msg, timeout=1.0, source=src)
    report(r is None, "UDP from %s (not loopback) -> no answer" % src)
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.settimeout(2)
    s.bind((src, 0))
    s.connect((addr, port))
    tcp_send(s, msg)
    closed = peer_closed(s)
    report(closed, "TCP from %s (not loopback) -> closed unanswered" % src)
    s.close()


def activate(addr, port, cmd):
    u = socket.socket(family(addr), socket.SOCK_DGRAM)
    u.bind((addr, port))
    t = socket.socket(family(addr), socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, port))
    t.listen(16)
    # sd_listen_fds(): fds from 3, LISTEN_PID ours (exec keeps it)
    for i, s in enumerate((u, t)):
        os.dup2(s.fileno(), 3 + i)
        os.set_inheritable(3 + i, True)
    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="stub:stub", LISTEN_PID=str(os.getpid()))
    os.execvpe(cmd[0], cmd, env)


def occupy(addr, port, kind):
    s = socket.socket(family(addr), socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    if kind == "tcp":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not SO_REUSEPORT
    s.bind((addr, port))
    if kind == "tcp":
        s.listen(1)
    print("occupied", flush=True)
    while True:
        time.sleep(3600)


RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def loop(addr, port, name, qtype=1):
    import signal

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sent = answered = lost = 0
    rcodes = {}
    t0 = time.monotonic()
    first = None
    while not stop:
        qid, msg = query(name, qtype)
        sent += 1
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        got = None
        try:
            s.sendto(msg, (addr, port))
            deadline = time.monotonic() + 2
            while got is None and time.monotonic() < deadline and not stop:
                ready, _, _ = select.select([s], [], [], 0.1)
                if ready:
                    r = s.recv(65535)
                    if len(r) >= 12 and header(r)["id"] == qid:
                        got = r
        except (ConnectionRefusedError, InterruptedError):
            pass
        finally:
            s.close()
        if got is None:
            if stop:
                sent -= 1  # cut short by the signal, not lost
            else:
                lost += 1
        else:
            answered += 1
            rc = RCODES.get(header(got)["rcode"], str(header(got)["rcode"]))
            rcodes[rc] = rcodes.get(rc, 0) + 1
            if first is None:
                first = (time.monotonic() - t0) * 1000
        time.sleep(0.005)
    print("sent %d answered %d lost %d %s first_answer_ms=%s" % (
        sent, answered, lost, " ".join("%s=%d" % kv for kv in sorted(rcodes.items())),
        "%.0f" % first if first is not None else "none"), flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "malformed":
        malformed(sys.argv[2], int(sys.argv[3]))
    elif cmd == "pipeline":
        pipeline(sys.argv[2], int(sys.argv[3]))
    elif cmd == "idle":
        idle(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "limit":
        limit(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "burst":
        burst(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "source":
        source(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "activate":
        activate(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif cmd == "occupy":
        occupy(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "loop":
        loop(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    else:
        sys.exit("unknown command " + cmd)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
