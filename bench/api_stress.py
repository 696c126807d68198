#!/usr/bin/env python3
"""Concurrent Engine API clients (bench/api.sh's stress phase).

usage: api_stress.py SOCKET SECONDS CLIENTS CGROUP_PARENT

CLIENTS threads, each with its own keep-alive connection to the unix socket SOCKET, repeat for
SECONDS: create a busybox container (`--network none`), start it, then either wait for it and
remove it, or (every other cycle) remove it forcibly while it may still run. Any answer other
than docker's success codes is an error. Prints one JSON object: cycles, errors (count and the
first few), request latencies.
"""

import http.client
import json
import socket
import sys
import threading
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker", timeout=120)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(self.path)
        self.sock = s


def main():
    sock, seconds, clients, cgroup = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    cycles = [0]
    errors = []
    lat = []

    # The API version as clients negotiate it: the server's (from /_ping), at most docker-py's.
    probe = UnixConnection(sock)
    probe.request("GET", "/_ping")
    r = probe.getresponse()
    r.read()
    server = r.getheader("Api-Version", "1.24")
    probe.close()
    version = min(tuple(int(x) for x in v.split(".")) for v in (server, "1.45"))
    prefix = "/v%d.%d" % tuple(version)

    def req(conn, method, path, body=None, ok=(200, 201, 204)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        t = time.monotonic()
        conn.request(method, prefix + path, body=data, headers=headers)
        r = conn.getresponse()
        out = r.read()
        dt = time.monotonic() - t
        with lock:
            lat.append(dt)
        if r.status not in ok:
            raise RuntimeError(f"{method} {path}: {r.status} {out[:200]!r}")
        return json.loads(out) if out else None

    def client(n):
        conn = UnixConnection(sock)
        i = 0
        while time.monotonic() < deadline:
            i += 1
            cid = None
            try:
                c = req(conn, "POST", "/containers/create", {
                    "Image": "busybox",
                    "Cmd": ["sh", "-c", "echo hi"] if i % 2 else ["sleep", "5"],
                    "Labels": {"stress": "1"},
                    "HostConfig": {"NetworkMode": "none", "CgroupParent": cgroup},
                })
                cid = c["Id"]
                req(conn, "POST", f"/containers/{cid}/start")
                if i % 2:
                    w = req(conn, "POST", f"/containers/{cid}/wait")
                    if w.get("StatusCode") != 0:
                        raise RuntimeError(f"container {cid[:12]} exited {w}")
                    req(conn, "DELETE", f"/containers/{cid}")
                else:
                    req(conn, "DELETE", f"/containers/{cid}?force=1")
                cid = None
                with lock:
                    cycles[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"client {n}: {e}")
                conn.close()
                conn = UnixConnection(sock)
                if cid:
                    try:
                        req(conn, "DELETE", f"/containers/{cid}?force=1", ok=(204, 404))
                    except Exception:  # noqa: BLE001
                        conn.close()
                        conn = UnixConnection(sock)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 1) if lat else 0

    print(json.dumps({
        "cycles": cycles[0],
        "seconds": round(wall, 1),
        "cycles_per_s": round(cycles[0] / wall, 2),
        "requests": len(lat),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 1) if lat else 0,
        "errors": len(errors),
        "first_errors": errors[:5],
    }))


if __name__ == "__main__":
    main()
