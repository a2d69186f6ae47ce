#!/usr/bin/env python3
"""Snapshot benchmark: build, send and install a snapshot of N things with shadows
and N retained messages, between two real `fleetcore` processes.

Node 1 starts alone and is loaded over its HTTP API (CreateThing, UpdateThingShadow,
and a retained publish per thing); then node 2 joins empty, so node 1 builds a
snapshot, streams it, and node 2 installs it. Reports the time from node 2's join
to caught up, the build and install times from both nodes' logs, the snapshot
size, and each process's peak RSS (VmHWM) before and after.

    deploy/bench-snapshot.py [--things 100000] [--bin target/release/fleetcore]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Node:
    def __init__(self, binary, root, node_id, extra):
        self.id = node_id
        self.http = f"127.0.0.1:{free_port()}"
        self.raft = f"127.0.0.1:{free_port()}"
        self.dir = os.path.join(root, f"node{node_id}")
        self.log = os.path.join(root, f"node{node_id}.log")
        args = [binary, "serve", "--node-id", str(node_id), "--data-dir", self.dir,
                "--http-addr", self.http, "--raft-addr", self.raft, "--mqtt-addr", ""] + extra
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "FLEETCORE_LOG_LEVEL": "info,openraft=warn"})

    def call(self, method, path, body=None, timeout=30):
        conn = http.client.HTTPConnection(self.http, timeout=timeout)
        try:
            data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            conn.request(method, path, body=data)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def status(self):
        try:
            code, body = self.call("GET", "/cluster/status", timeout=5)
            return json.loads(body) if code == 200 else None
        except OSError:
            return None


def wait(what, deadline_s, check):
    end = time.time() + deadline_s
    while time.time() < end:
        v = check()
        if v:
            return v
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def load(node, things, workers):
    local = threading.local()

    def conn():
        if not hasattr(local, "c"):
            local.c = http.client.HTTPConnection(node.http, timeout=30)
        return local.c

    def one(i):
        for method, path, body in (
            ("POST", f"/things/bench-{i}", {"attributePayload": {"attributes": {"i": str(i)}}}),
            ("POST", f"/things/bench-{i}/shadow",
             {"state": {"reported": {"temp": i % 40, "fw": "1.2.3", "on": True}}}),
            ("POST", f"/topics/bench%2F{i}%2Fconfig?qos=1&retain=true", f"config-{i}-".encode() * 8),
        ):
            for attempt in range(5):
                try:
                    c = conn()
                    data = body if isinstance(body, bytes) else json.dumps(body).encode()
                    c.request(method, path, body=data)
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        break
                except OSError:
                    local.c = http.client.HTTPConnection(node.http, timeout=30)
                time.sleep(0.05 * (attempt + 1))
            else:
                raise RuntimeError(f"{method} {path} failed")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(things), chunksize=64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--things", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=32)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bin", default=next((p for p in (f"{target}/release/fleetcore", f"{target}/debug/fleetcore")
                                            if os.path.exists(p)), None))
    ap.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    a = ap.parse_args()
    if not a.bin:
        sys.exit("no fleetcore binary: cargo build --release -p fleetcore, or --bin")
    root = tempfile.mkdtemp(prefix="fleetcore-bench-snapshot-")
    nodes = []
    try:
        # A snapshot (and a purge of the log before it) well before the load ends,
        # so node 2 can only catch up from a snapshot.
        n1 = Node(a.bin, root, 1, ["--snapshot-every-entries", "20000"])
        nodes.append(n1)
        wait("node 1 to lead", 60, lambda: (n1.status() or {}).get("leader_id") == 1)
        t = time.time()
        load(n1, a.things, a.workers)
        load_s = time.time() - t
        writes = a.things * 3
        s1 = n1.status()
        print(f"loaded {writes} writes in {load_s:.1f} s ({writes / load_s:.0f}/s); "
              f"node 1 applied {s1['applied_index']}, purged {s1['purged_index']}, "
              f"RSS {rss_kib(n1.proc.pid) / 1024:.0f} MiB, peak {peak_rss_kib(n1.proc.pid) / 1024:.0f} MiB")
        before1 = peak_rss_kib(n1.proc.pid)
        t = time.time()
        n2 = Node(a.bin, root, 2, ["--join", f"http://{n1.http}"])
        nodes.append(n2)

        def caught_up():
            s, t1 = n2.status(), n1.status()
            return s and t1 and s.get("applied_index") and s["applied_index"] >= t1["applied_index"] \
                and s["state_digest"] == t1["state_digest"]

        wait("node 2 to catch up", 1800, caught_up)
        catch_up_s = time.time() - t
        ansi = re.compile(r"\x1b\[[0-9;]*m")
        log1, log2 = (ansi.sub("", open(n.log).read()) for n in (n1, n2))
        built = re.findall(r"built snapshot.*?records=(\d+).*?bytes=(\d+).*?ms=(\d+)", log1)
        installed = re.findall(r"installed snapshot.*?records=(\d+).*?ms=(\d+)", log2)
        print(f"node 2 joined and caught up in {catch_up_s:.1f} s")
        if built:
            records, size, ms = built[-1]
            print(f"node 1 built its last snapshot: {records} records, {int(size) / 2**20:.1f} MiB, {ms} ms")
        if installed:
            print(f"node 2 installed the snapshot ({installed[-1][0]} records) in {installed[-1][1]} ms")
        print(f"peak RSS: node 1 {before1 / 1024:.0f} MiB after the load, {peak_rss_kib(n1.proc.pid) / 1024:.0f} MiB "
              f"after sending; node 2 {peak_rss_kib(n2.proc.pid) / 1024:.0f} MiB (RSS now {rss_kib(n2.proc.pid) / 1024:.0f} MiB)")
        print(f"binary: {a.bin}; logs in {root}" if a.keep else f"binary: {a.bin}")
    finally:
        for n in nodes:
            n.proc.terminate()
        for n in nodes:
            try:
                n.proc.wait(10)
            except subprocess.TimeoutExpired:
                n.proc.kill()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
