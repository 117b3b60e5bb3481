#!/usr/bin/env python3
"""idle_tls: ringmqd's resident memory per idle connection: tcp, tls, ws, wss.

For each transport, in the same run: start ringmqd (one shard) on a free
loopback port, read its VmRSS, open N connections that each complete
CONNECT/CONNACK (MQTT 3.1.1, keepalive 0) and stay idle, wait for the
memory to settle, read VmRSS again, and report (after - before) / N. TLS
connections (tls, wss) use TLS 1.3 (Python's ssl, OpenSSL) and a P-256
certificate made here by the openssl CLI. WebSocket connections (ws, wss)
send the HTTP Upgrade for /mqtt (subprotocol mqtt) first, then CONNECT in
one masked binary frame, and read CONNACK from the broker's frame.
Loopback only; the brokers it starts are stopped by their pid.

    bench/idle_tls.py [-n 10000] [--ringmqd build/src/ringmqd]
                      [--conf conf/ringmq.ini] [--tls-version 1.3|1.2]
                      [--warmup 0] [--transports tcp,tls,ws,wss] [--keep DIR]

--warmup W opens and closes W connections before the first reading, so
that what the first handshakes cost once per process (caches, per-thread
tables) is not counted per connection.
"""
import argparse
import asyncio
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

CONNECT_FIXED = bytes([0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x00])


def connect_packet(client_id):
    cid = client_id.encode()
    body = CONNECT_FIXED + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


UPGRADE = (b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def ws_frame(payload):
    """One masked binary frame (RFC 6455 5.2) of a payload under 126 bytes."""
    masked = bytes(b ^ MASK[i & 3] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + MASK + masked


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def make_cert(d):
    k = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *k, "-keyout", f"{d}/key.pem", "-out",
                    f"{d}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)


def start_broker(args, transport, d):
    port = free_port()
    # It measures memory, not time: a client slowed down by a busy machine
    # must not be closed for a slow CONNECT or handshake.
    sets = [f"listener.default.port={port}", "server.shards=1", "persistence.enabled=false",
            f"listener.default.transport={transport}", "limits.connect_timeout=3600",
            "listener.default.tls_handshake_timeout=3600"]
    if transport in ("tls", "wss"):
        sets += [f"listener.default.tls_cert={d}/cert.pem", f"listener.default.tls_key={d}/key.pem"]
    cmd = [args.ringmqd, "-c", args.conf]
    for s in sets:
        cmd += ["--set", s]
    log = open(f"{d}/ringmqd-{transport}.log", "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.05)
    p.kill()
    sys.exit(f"ringmqd ({transport}) did not start: see {d}/ringmqd-{transport}.log")


async def open_one(port, ctx, ws, cid, sem):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             server_hostname="localhost" if ctx else None)
        if ws:
            w.write(UPGRADE)
            head = await r.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"{cid}: Upgrade answered {head[:40]!r}")
            w.write(ws_frame(connect_packet(cid)))
            hdr = await r.readexactly(2)
            if hdr != bytes([0x82, 4]):
                raise RuntimeError(f"{cid}: frame {hdr.hex()}, not CONNACK's")
        else:
            w.write(connect_packet(cid))
        ack = await r.readexactly(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError(f"{cid}: CONNACK {ack.hex()}")
        return w


async def open_many(port, ctx, ws, n, prefix):
    sem = asyncio.Semaphore(64)
    return await asyncio.gather(*(open_one(port, ctx, ws, f"{prefix}-{i}", sem)
                                  for i in range(n)))


async def close_all(ws):
    for w in ws:
        w.close()
    await asyncio.sleep(0.5)


def settle(pid):
    """VmRSS once it stops changing (bounded)."""
    last = rss_bytes(pid)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_bytes(pid)
        if now == last:
            break
        last = now
    return last


def measure(args, transport, d):
    ctx = None
    ws = transport in ("ws", "wss")
    if transport in ("tls", "wss"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(f"{d}/cert.pem")
        v = ssl.TLSVersion.TLSv1_3 if args.tls_version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = v
    p, port = start_broker(args, transport, d)
    try:
        if args.warmup:
            ws = asyncio.run(open_many(port, ctx, ws, args.warmup, "warm"))
            asyncio.run(close_all(ws))
        before = settle(p.pid)
        loop = asyncio.new_event_loop()
        ws = loop.run_until_complete(open_many(port, ctx, ws, args.n, "idle"))
        after = settle(p.pid)
        loop.run_until_complete(close_all(ws))
        loop.close()
    finally:
        p.terminate()
        p.wait()
    per = (after - before) / args.n
    print(f"{transport:4} n={args.n} rss_before={before} rss_after={after} "
          f"bytes_per_conn={per:.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--ringmqd", default="build/src/ringmqd")
    ap.add_argument("--conf", default="conf/ringmq.ini")
    ap.add_argument("--tls-version", choices=["1.2", "1.3"], default="1.3")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--transports", default="tcp,tls,ws,wss")
    ap.add_argument("--keep", metavar="DIR",
                    help="certificate and broker logs go to DIR, kept (default: a temporary one)")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        run(args, args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="ringmq-idle-tls.") as d:
        run(args, d)


def run(args, d):
    make_cert(d)
    for t in args.transports.split(","):
        measure(args, t, d)


if __name__ == "__main__":
    main()
