#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Unprivileged users flooding ztnad's control socket while root asks.

    control-flood.py SOCKET PEERS_FILE STORE LIBDIR PID SECONDS [USERS]

For SECONDS, run as root:
  - USERS (default 5) unprivileged users (uids 64000..), each holding 16
    connections open and idle, and sending {"command":"list"} on a new
    connection and closing at once, as fast as it can (USERS=0: no flood);
  - root asking {"command":"status"} every 100 ms, each answer timed;
  - the peers file replaced every second with one more peer, and the time
    until glibc (getent -s "hosts: ztna", the module in LIBDIR reading
    STORE) resolves it.
Prints key=value lines: status_n, status_p50_ms, status_p99_ms,
status_max_ms, update_n, update_median_ms, update_max_ms, flood_requests,
cpu_ms (ztnad's, PID), cpu_us_per_flood_request, refused_busy.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def flooder(path, uid, stop_at, out_fd):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    held = []
    for _ in range(16):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            held.append(s)
        except OSError:
            break
    sent = busy = 0
    while time.monotonic() < stop_at:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.sendall(b'{"command":"list"}\n')
            s.close()
            sent += 1
        except OSError:
            busy += 1
            time.sleep(0.001)
    os.write(out_fd, ("%d %d\n" % (sent, busy)).encode())
    os._exit(0)


def ask_status(path):
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # A blocking connect, as ztna's: with the listen backlog full it
    # waits for room, and that wait is part of the answer's time.
    s.connect(path)
    s.settimeout(10)
    s.sendall(b'{"command":"status"}\n')
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    ok = b'"ok":true' in buf or b'"ok": true' in buf
    return (time.monotonic() - t0) * 1000, ok


def resolves(libdir, store, name):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir, ZTNA_STORE=store)
    return subprocess.run(["getent", "-s", "hosts: ztna", "hosts", name], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def main():
    path, peers_file, store, libdir = sys.argv[1:5]
    pid, seconds = int(sys.argv[5]), float(sys.argv[6])
    users = int(sys.argv[7]) if len(sys.argv) > 7 else 5
    doc = json.load(open(peers_file))
    stop_at = time.monotonic() + seconds
    rfd, wfd = os.pipe()
    kids = []
    for i in range(users):
        k = os.fork()
        if k == 0:
            os.close(rfd)
            flooder(path, 64000 + i, stop_at, wfd)
        kids.append(k)
    os.close(wfd)
    cpu0 = cpu_ms(pid)
    lat, bad, updates = [], 0, []
    n = 0
    next_status = time.monotonic()
    next_update = time.monotonic() + 0.5
    pending = None  # (name, t0)
    while time.monotonic() < stop_at:
        now = time.monotonic()
        if now >= next_status:
            ms, ok = ask_status(path)
            lat.append(ms)
            bad += not ok
            next_status += 0.1
        if pending is None and now >= next_update and now < stop_at - 1.5:
            n += 1
            name = "Flood-%d" % n
            d = dict(doc)
            d["peers"] = list(doc["peers"]) + [{"name": name, "addresses": ["100.127.250.%d" % n]}]
            tmp = peers_file + ".new"
            with open(tmp, "w") as f:
                json.dump(d, f)
            t0 = time.monotonic()
            os.rename(tmp, peers_file)
            pending = (name, t0)
            next_update = t0 + 1.0
        if pending is not None and resolves(libdir, store, pending[0]):
            updates.append((time.monotonic() - pending[1]) * 1000)
            pending = None
        time.sleep(0.005)
    cpu1 = cpu_ms(pid)
    sent = busy = 0
    with os.fdopen(rfd) as f:
        for line in f:
            a, b = line.split()
            sent += int(a)
            busy += int(b)
    for k in kids:
        os.waitpid(k, 0)
    lat.sort()
    print("status_n=%d" % len(lat))
    print("status_failed=%d" % bad)
    if lat:
        print("status_p50_ms=%.2f" % statistics.median(lat))
        print("status_p99_ms=%.2f" % lat[min(len(lat) - 1, int(len(lat) * 0.99))])
        print("status_max_ms=%.2f" % lat[-1])
    print("update_n=%d" % len(updates))
    print("update_missed=%d" % (pending is not None))
    if updates:
        print("update_median_ms=%.1f" % statistics.median(updates))
        print("update_max_ms=%.1f" % max(updates))
    print("flood_requests=%d" % sent)
    print("refused_busy=%d" % busy)
    print("cpu_ms=%.0f" % (cpu1 - cpu0))
    if sent:
        print("cpu_us_per_flood_request=%.1f" % ((cpu1 - cpu0) * 1000 / sent))


if __name__ == "__main__":
    main()
