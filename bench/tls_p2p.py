#!/usr/bin/env python3
"""tls_p2p: ringmqd's CPU per message over TLS, one publisher to one subscriber.

Starts ringmqd (one shard, transport = tls, a P-256 certificate made here),
connects a subscriber and a publisher (Python ssl, TLS 1.3), and sends
--count QoS 0 PUBLISH packets of --size bytes, written in batches of
--batch packets, until the subscriber has them all. Reports the wall time,
messages/s and the broker's CPU time (utime + stime from /proc) per
message. Python is the bottleneck for the rate; the broker's CPU per
message is the figure to compare between builds (--ringmqd A,B runs each).

    bench/tls_p2p.py [--ringmqd build/src/ringmqd[,other]] [--count 200000]
                     [--size 16] [--batch 100]
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idle_tls import connect_packet, free_port, make_cert  # noqa: E402


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tls_conn(ctx, port, cid):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(connect_packet(cid))
    ack = s.recv(4)
    assert ack[:1] == b"\x20" and ack[3] == 0, ack
    return s


def run(binary, args, d):
    port = free_port()
    cmd = [binary, "-c", args.conf, "--set", f"listener.default.port={port}", "--set", "persistence.enabled=false", "--set",
           "server.shards=1", "--set", "listener.default.transport=tls", "--set",
           f"listener.default.tls_cert={d}/cert.pem", "--set",
           f"listener.default.tls_key={d}/key.pem"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(f"{d}/cert.pem")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        sub = tls_conn(ctx, port, "p2p-sub")
        sub.sendall(bytes([0x82, 8, 0, 1, 0, 3]) + b"p/t" + bytes([0]))
        assert sub.recv(5)[:1] == b"\x90"
        pub = tls_conn(ctx, port, "p2p-pub")
        payload = b"x" * args.size
        rl, n = bytearray(), 2 + 3 + args.size  # the remaining length, a varint
        while True:
            rl.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                break
        pkt = bytes([0x30]) + rl + bytes([0, 3]) + b"p/t" + payload
        want = len(pkt) * args.count
        got = [0]

        def reader():
            while got[0] < want:
                n = len(sub.recv(1 << 16))
                if n == 0:
                    break
                got[0] += n

        t = threading.Thread(target=reader)
        t.start()
        c0, t0 = cpu_s(p.pid), time.monotonic()
        batch = pkt * args.batch
        for _ in range(args.count // args.batch):
            pub.sendall(batch)
        t.join(30)  # QoS 0 may be dropped under load: bounded
        wall, cpu = time.monotonic() - t0, cpu_s(p.pid) - c0
        ok = got[0] >= want
        print(f"{binary}: {args.count} msgs of {args.size} B in {wall:.2f} s "
              f"({args.count / wall:.0f} msg/s), broker CPU {cpu:.2f} s = "
              f"{cpu / args.count * 1e6:.2f} us/msg{'' if ok else ' (INCOMPLETE)'}", flush=True)
        pub.close()
        sub.close()
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ringmqd", default="build/src/ringmqd")
    ap.add_argument("--conf", default="conf/ringmq.ini")
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ringmq-tls-p2p.") as d:
        make_cert(d)
        for b in args.ringmqd.split(","):
            run(b, args, d)


if __name__ == "__main__":
    main()
