#!/usr/bin/python3
"""Traffic generator for the tollgate namespace lab (tools/lab).

    lab_traffic.py http URL --count N [--timeout 2] [--keep-alive] [--rate R] [--source-ports A-B]
                   [--stop-file PATH]
    lab_traffic.py udp HOST PORT --count N [--timeout 1] [--payload-bytes B]
    lab_traffic.py stream URL --duration S [--interval 0.05] [--stop-file PATH]
    lab_traffic.py hold URL --connections N --duration S [--stop-file PATH]
    lab_traffic.py watch --duration S [--stop-file PATH]

Prints ONE JSON object on stdout; exits 0 if nothing failed, 1 otherwise
(2 on bad usage). Every loop is bounded in count and in time.

http:   N GETs, each on a new TCP connection unless --keep-alive; with
        --stop-file, fewer once that file exists (it is load to run across
        an event, stopped by the caller; the count still bounds it). With
        --source-ports, connection i binds source port A + i mod (B-A+1) and
        ends by RST (no TIME_WAIT keeps the port), so each port is reused
        while the gateway still keeps its earlier connection's entry.
        {"ok", "failed", "backends": {"b1": n, ...}, "errors", "seconds"}
udp:    N datagrams "ping-<i>", each from a new socket (a new source port,
        so a new flow); expects "NAME ping-<i>" back from HOST:PORT (the
        socket is connected, so a reply from any other address is ignored
        and counts as a timeout). --payload-bytes pads each to B bytes
        (larger than the MTU, the kernels fragment it both ways). Same JSON
        shape as http.
hold:   N keep-alive TCP connections at once (N at most 500): a GET on
        each, "ready" to stderr, then held until the duration passes or the
        stop file exists, and one more GET on each. Same JSON shape as http
        (the backends of the first GETs).
stream: ONE keep-alive TCP connection, a GET every interval until the
        duration passes or the stop file exists (then one last GET). Any error, a reconnect
        that would be needed, or an answer from another backend than the
        first counts as failed and ends the run. Writes "ready BACKEND" to stderr
        after the first successful request. SIGTERM/SIGINT end a stream
        normally, like the stop file.
        {"ok", "failed", "backend", "errors", "seconds"}
watch:  what arrives: every IPv4 and IPv6 packet this node receives on any
        interface (an AF_PACKET socket) until the duration passes or the
        stop file exists, counted by source address. Writes "ready" to
        stderr once it listens. {"ok": 1, "failed": 0, "sources": {ADDRESS: n}, "seconds"}

SIGTERM/SIGINT end http and udp early, counted as a failure; the JSON is
printed all the same.

The backend name is read from the body "backend NAME". Python 3 standard
library only.
"""

import argparse
import contextlib
import http.client
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

MAX_ERRORS = 5
MAX_EVENTS = 10000  # failures and slow requests kept with their times
MAX_IN_FLIGHT = 200  # --rate: concurrent requests at most
SLOW_SECONDS = 0.3  # a request this slow is reported with its time


class Stop(Exception):
    """Raised by the signal handler to end a run early (results still print)."""


def on_signal(_signum, _frame):
    raise Stop("interrupted by signal")


class Tally:
    def __init__(self):
        self.start = time.monotonic()
        self.ok = 0
        self.failed = 0
        self.backends = {}
        self.errors = []
        self.failures_at = []  # wall-clock start of each failed request
        self.slow = []  # [wall-clock start, seconds, backend] of slow ones

    def success(self, backend):
        self.ok += 1
        self.backends[backend] = self.backends.get(backend, 0) + 1

    def failure(self, what):
        self.failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(what)

    def seconds(self):
        return round(time.monotonic() - self.start, 3)


def timed(tally, request, lock=contextlib.nullcontext()):
    """Runs request() (returns a backend name or raises), noting when it
    started, whether it failed and whether it was slow; records under `lock`."""
    started_wall, started = time.time(), time.monotonic()
    try:
        backend = request()
    except BaseException:
        with lock:
            if len(tally.failures_at) < MAX_EVENTS:
                tally.failures_at.append(round(started_wall, 3))
        raise
    took = time.monotonic() - started
    with lock:
        if took > SLOW_SECONDS and len(tally.slow) < MAX_EVENTS:
            tally.slow.append([round(started_wall, 3), round(took, 3), backend])
        tally.success(backend)


def describe(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"lab_traffic: not an http:// URL: {url}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


def backend_of(body):
    text = body.decode(errors="replace").strip()
    fields = text.split()
    if len(fields) != 2 or fields[0] != "backend":
        raise ValueError(f"unexpected body {text[:60]!r}")
    return fields[1]


def get(conn, path, body_bytes=0):
    """One GET on conn (a POST of `body_bytes` bytes if not 0); returns the
    backend name or raises."""
    if body_bytes:
        conn.request("POST", path, body=b"x" * body_bytes)
    else:
        conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise ValueError(f"HTTP status {response.status}")
    return backend_of(body)


def source_address(args, i):
    """The address connection i binds (None: the kernel's choice)."""
    if not args.source_ports:
        return None
    first, last = args.source_ports
    return ("", first + i % (last - first + 1))


def close(conn, abort):
    """Closes conn; with `abort` by RST (SO_LINGER 0), which leaves no
    TIME_WAIT behind, so that its source port can be bound again at once."""
    if abort and conn.sock is not None:
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def run_http(args):
    host, port, path = parse_url(args.url)
    tally = Tally()
    if args.rate:
        return run_http_at_rate(args, host, port, path)
    abort = bool(args.source_ports)
    deadline = tally.start + args.count * (2 * args.timeout + 0.5) + 5
    conn = None
    try:
        for i in range(args.count):
            if args.stop_file and os.path.exists(args.stop_file):
                break
            if time.monotonic() > deadline:
                tally.failure(f"deadline passed before request {i}")
                tally.failed += args.count - i - 1
                break
            try:
                def request():
                    nonlocal conn
                    if conn is None:
                        conn = http.client.HTTPConnection(host, port, timeout=args.timeout,
                                                          source_address=source_address(args, i))
                    return get(conn, path, args.body_bytes)
                timed(tally, request)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                tally.failure(f"request {i}: {describe(exc)}")
                if conn is not None:
                    close(conn, abort)
                conn = None
            if not args.keep_alive and conn is not None:
                close(conn, abort)
                conn = None
    except Stop as exc:
        tally.failure(str(exc))
    finally:
        if conn is not None:
            close(conn, abort)
    return http_report(tally)


def http_report(tally):
    return {"ok": tally.ok, "failed": tally.failed, "backends": tally.backends,
            "errors": tally.errors, "seconds": tally.seconds(), "failures_at": tally.failures_at,
            "slow": tally.slow}


def run_http_at_rate(args, host, port, path):
    """Open loop: a new connection every 1/rate s whatever the earlier ones
    are doing (each in its own thread, at most MAX_IN_FLIGHT at once), so a
    slow backend does not slow the rate down."""
    tally = Tally()
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    threads = []

    def one(i):
        conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
        try:
            timed(tally, lambda: get(conn, path, args.body_bytes), lock)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            with lock:
                tally.failure(f"request {i}: {describe(exc)}")
        finally:
            conn.close()
            slots.release()

    try:
        for i in range(args.count):
            if args.stop_file and os.path.exists(args.stop_file):
                break
            delay = tally.start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not slots.acquire(timeout=2 * args.timeout + 1):
                with lock:
                    tally.failure(f"request {i}: {MAX_IN_FLIGHT} requests in flight")
                continue
            thread = threading.Thread(target=one, args=(i,), daemon=True)
            thread.start()
            threads.append(thread)
            threads = [t for t in threads if t.is_alive()]
    except Stop as exc:
        tally.failure(str(exc))
    for thread in threads:
        thread.join(2 * args.timeout + 1)
    with lock:
        return http_report(tally)


def run_udp(args):
    tally = Tally()
    deadline = tally.start + args.count * (args.timeout + 0.5) + 5
    try:
        infos = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        tally.failure(f"resolve {args.host}: {describe(exc)}")
        tally.failed = args.count
        infos = []
    try:
        for i in range(args.count if infos else 0):
            if time.monotonic() > deadline:
                tally.failure(f"deadline passed before datagram {i}")
                tally.failed += args.count - i - 1
                break
            family, socktype, proto, _, addr = infos[0]
            payload = f"ping-{i}-".encode().ljust(args.payload_bytes, b"x")
            try:
                with socket.socket(family, socktype, proto) as sock:
                    sock.settimeout(args.timeout)
                    sock.connect(addr)
                    sock.send(payload)
                    until = time.monotonic() + args.timeout
                    while True:
                        sock.settimeout(max(until - time.monotonic(), 0.001))
                        reply = sock.recv(65535)
                        fields = reply.split(b" ", 1)
                        if len(fields) == 2 and fields[1] == payload:
                            tally.success(fields[0].decode(errors="replace"))
                            break
                        # A stray or wrong reply: keep waiting until the timeout.
            except (OSError, ValueError) as exc:
                tally.failure(f"datagram {i}: {describe(exc)}")
    except Stop as exc:
        tally.failure(str(exc))
    return {"ok": tally.ok, "failed": tally.failed, "backends": tally.backends,
            "errors": tally.errors, "seconds": tally.seconds(), "failures_at": tally.failures_at}


def udp_rate_sender(args, cpu, rate, out):
    """One paced sender on one CPU: sends `rate` datagrams per second for
    args.seconds from one socket, counts the echoes; writes its counts."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass
    family, socktype, proto, _, addr = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_DGRAM)[0]
    sent = received = 0
    with socket.socket(family, socktype, proto) as sock:
        sock.connect(addr)
        sock.setblocking(False)
        start = time.monotonic()
        total = int(rate * args.seconds)
        while sent < total:
            due = start + sent / rate
            now = time.monotonic()
            if now >= due:
                try:
                    sock.send(b"rate-%d" % sent)
                except OSError:
                    pass
                sent += 1
                continue
            ready, _, _ = select.select([sock], [], [], due - now)
            while ready:
                try:
                    sock.recv(65535)
                    received += 1
                except BlockingIOError:
                    break
        until = time.monotonic() + args.timeout
        while time.monotonic() < until:
            ready, _, _ = select.select([sock], [], [], until - time.monotonic())
            if not ready:
                break
            try:
                sock.recv(65535)
                received += 1
            except BlockingIOError:
                pass
    os.write(out, json.dumps({"sent": sent, "received": received}).encode())


def run_udp_rate(args):
    """--senders processes, each on its own CPU, share --rate between them."""
    cpus = sorted(os.sched_getaffinity(0))
    children = []
    for k in range(args.senders):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            try:
                udp_rate_sender(args, cpus[k % len(cpus)], args.rate / args.senders, write_end)
            except BaseException:  # noqa: B036 - the child must never return into the parent's code
                code = 1
            os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    sent = received = 0
    errors = []
    for pid, read_end in children:
        with os.fdopen(read_end) as pipe:
            text = pipe.read()
        os.waitpid(pid, 0)
        try:
            counts = json.loads(text)
            sent += counts["sent"]
            received += counts["received"]
        except (ValueError, KeyError):
            errors.append(f"sender {pid} reported nothing")
    return {"ok": received, "failed": sent - received, "sent": sent, "received": received,
            "seconds": args.seconds, "errors": errors}


def run_stream(args):
    host, port, path = parse_url(args.url)
    tally = Tally()
    end = tally.start + args.duration
    first = None
    conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
    sock = None
    i = 0
    last = False
    try:
        while True:
            try:
                if sock is not None and conn.sock is not sock:
                    raise ConnectionError("connection closed; a reconnect would be needed")
                backend = get(conn, path)
                if sock is None:
                    # From now on never reconnect silently.
                    sock = conn.sock
                    conn.auto_open = 0
                    if sock is None:
                        raise ConnectionError("server closed the connection after the first answer")
                if first is None:
                    first = backend
                elif backend != first:
                    raise ValueError(f"answer from {backend}, first answers came from {first}")
                tally.success(backend)
                if tally.ok == 1:
                    print(f"ready {backend}", file=sys.stderr, flush=True)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                tally.failure(f"request {i}: {describe(exc)}")
                break
            i += 1
            if last:
                break
            now = time.monotonic()
            if now >= end:
                break
            time.sleep(min(args.interval, end - now))
            # One more request once the stop file is there: it proves the
            # connection outlived whatever happened before the file.
            last = bool(args.stop_file and os.path.exists(args.stop_file))
    except Stop:
        pass  # like the stop file: a normal end of a stream
    finally:
        conn.close()
    return {"ok": tally.ok, "failed": tally.failed, "backend": first,
            "errors": tally.errors, "seconds": tally.seconds()}


def run_hold(args):
    """N keep-alive connections held open at once: a GET on each, then
    one more on each when the duration passes or the stop file exists."""
    host, port, path = parse_url(args.url)
    tally = Tally()
    end = tally.start + args.duration
    conns = []
    try:
        for i in range(args.connections):
            conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
            conns.append(conn)
            try:
                tally.success(get(conn, path))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                tally.failure(f"connection {i}: {describe(exc)}")
        print("ready", file=sys.stderr, flush=True)
        while time.monotonic() < end and not (args.stop_file and os.path.exists(args.stop_file)):
            time.sleep(0.05)
        for i, conn in enumerate(conns):
            sock = conn.sock
            conn.auto_open = 0
            try:
                if sock is None:
                    raise ConnectionError("closed before the last request")
                get(conn, path)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                tally.failure(f"connection {i}, last request: {describe(exc)}")
    except Stop:
        pass
    finally:
        for conn in conns:
            conn.close()
    return http_report(tally)


def run_watch(args):
    tally = Tally()
    sources = {}
    end = time.monotonic() + args.duration
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)) as sock:  # ETH_P_ALL
        sock.settimeout(0.1)
        print("ready", file=sys.stderr, flush=True)
        try:
            while time.monotonic() < end and not (args.stop_file and os.path.exists(args.stop_file)):
                try:
                    frame, address = sock.recvfrom(65535)
                except socket.timeout:
                    continue
                if address[2] == socket.PACKET_OUTGOING or len(frame) < 14:
                    continue
                ether_type = struct.unpack_from("!H", frame, 12)[0]
                if ether_type == 0x0800 and len(frame) >= 34:
                    source = socket.inet_ntop(socket.AF_INET, frame[26:30])
                elif ether_type == 0x86DD and len(frame) >= 54:
                    source = socket.inet_ntop(socket.AF_INET6, frame[22:38])
                else:
                    continue
                sources[source] = sources.get(source, 0) + 1
        except Stop:
            pass
    tally.ok = 1
    return {"ok": tally.ok, "failed": 0, "sources": sources, "seconds": tally.seconds()}


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def body_size(text):
    value = int(text)
    if not 0 <= value <= 1 << 20:
        raise argparse.ArgumentTypeError("a body is 0 to 1048576 bytes")
    return value


def port_range(text):
    first, _, last = text.partition("-")
    try:
        first, last = int(first), int(last)
    except ValueError:
        raise argparse.ArgumentTypeError("must be FIRST-LAST") from None
    if not 1 <= first <= last <= 65535:
        raise argparse.ArgumentTypeError("must be FIRST-LAST, 1 <= FIRST <= LAST <= 65535")
    return first, last


def positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def main():
    parser = argparse.ArgumentParser(
        description="Traffic generator for the tollgate lab; prints one JSON object.")
    sub = parser.add_subparsers(dest="mode", required=True)

    p = sub.add_parser("http", help="N GETs, a new TCP connection each (default)")
    p.add_argument("url")
    p.add_argument("--count", type=positive_int, required=True)
    p.add_argument("--timeout", type=positive_float, default=2.0)
    p.add_argument("--keep-alive", action="store_true",
                   help="reuse one connection (reconnect after a failure)")
    p.add_argument("--stop-file", help="stop early once this file exists")
    p.add_argument("--body-bytes", type=body_size, default=0,
                   help="POST a body of this many bytes instead of a GET")
    p.add_argument("--rate", type=positive_float,
                   help="open loop: start a new connection this many times per second, "
                        "whatever earlier ones do (default: one after the other)")
    p.add_argument("--source-ports", type=port_range, metavar="FIRST-LAST",
                   help="bind connection i to the i-th of these source ports, in turn; close it by RST")

    p = sub.add_parser("udp", help="N datagrams, a new socket (source port) each")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=positive_int, required=True)
    p.add_argument("--timeout", type=positive_float, default=1.0)
    p.add_argument("--payload-bytes", type=positive_int, default=0,
                   help="pad each datagram to this size (at most 65,000)")

    p = sub.add_parser("udp-rate", help="paced datagrams from one source address, several CPUs")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--rate", type=positive_float, required=True, help="datagrams per second, in all")
    p.add_argument("--seconds", type=positive_float, required=True)
    p.add_argument("--senders", type=positive_int, default=1, help="processes, each pinned to a CPU")
    p.add_argument("--timeout", type=positive_float, default=1.0, help="wait for late echoes")

    p = sub.add_parser("stream", help="GETs on ONE keep-alive connection")
    p.add_argument("url")
    p.add_argument("--duration", type=positive_float, required=True)
    p.add_argument("--interval", type=positive_float, default=0.05)
    p.add_argument("--timeout", type=positive_float, default=2.0)
    p.add_argument("--stop-file")

    p = sub.add_parser("hold", help="N keep-alive connections held open at once")
    p.add_argument("url")
    p.add_argument("--connections", type=positive_int, required=True)
    p.add_argument("--duration", type=positive_float, required=True)
    p.add_argument("--timeout", type=positive_float, default=2.0)
    p.add_argument("--stop-file")

    p = sub.add_parser("watch", help="count what arrives, by source address")
    p.add_argument("--duration", type=positive_float, required=True)
    p.add_argument("--stop-file")

    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.mode == "http" and args.source_ports and (args.rate or args.keep_alive):
        parser.error("http: --source-ports goes with neither --rate nor --keep-alive")
    if args.mode == "udp" and args.payload_bytes > 65_000:
        parser.error("udp: --payload-bytes is at most 65,000 (an IP datagram's limit)")
    if args.mode == "udp-rate" and args.rate * args.seconds > 1_000_000:
        parser.error("udp-rate: at most 1,000,000 datagrams (rate x seconds)")
    if args.mode == "hold" and args.connections > 500:
        parser.error("hold: at most 500 connections")
    result = {"http": run_http, "udp": run_udp, "udp-rate": run_udp_rate, "stream": run_stream,
              "hold": run_hold, "watch": run_watch}[args.mode](args)
    # From here on a signal must not lose the result.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if result["ok"] == 0 and result["failed"] == 0:
        result["failed"] = 1
        result["errors"].append("no request was made")
    print(json.dumps(result), flush=True)
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
