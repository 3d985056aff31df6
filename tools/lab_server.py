#!/usr/bin/python3
"""Backend server for the tollgate namespace lab (tools/lab).

    lab_server.py --name NAME [--http-port 8080] [--udp-port 9000]

HTTP/1.1 with keep-alive on [::]:HTTP_PORT (dual stack): any GET answers
200 with the body "backend NAME\\n". GET /slow?seconds=N first sleeps N
seconds (at most 30), for drain tests. A POST reads its whole body (up to
1 MiB, Content-Length) before it answers the same, for path MTU tests.

UDP echo on [::]:UDP_PORT (dual stack): answers "NAME " + the payload.

Quiet (no per-request log). Exits cleanly (status 0) on SIGTERM or SIGINT.
Python 3 standard library only.
"""

import argparse
import http.server
import signal
import socket
import sys
import threading
import time
import urllib.parse

MAX_SLOW_SECONDS = 30.0
MAX_POST_BYTES = 1 << 20
# An idle keep-alive connection is closed after this long, so connections
# whose client vanished (e.g. a flow the balancer dropped) do not pin a
# thread forever.
IDLE_TIMEOUT_SECONDS = 300


class DualStackHTTPServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_handler(name):
    body = f"backend {name}\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tollgate-lab"
        sys_version = ""
        timeout = IDLE_TIMEOUT_SECONDS
        # Headers and body leave in one write (handle_one_request flushes
        # after each request), and TCP_NODELAY: otherwise Nagle and the
        # client's delayed ACK cost ~40 ms per keep-alive request.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def version_string(self):
            return self.server_version

        def _answer(self, send_body):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/slow":
                query = urllib.parse.parse_qs(url.query)
                try:
                    seconds = float(query.get("seconds", ["0"])[0])
                except ValueError:
                    seconds = 0.0
                seconds = min(max(seconds, 0.0), MAX_SLOW_SECONDS)
                if seconds > 0:
                    time.sleep(seconds)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", name)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def do_GET(self):
            self._answer(True)

        def do_HEAD(self):
            self._answer(False)

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_POST_BYTES:
                self.send_error(413 if length > MAX_POST_BYTES else 411)
                return
            if len(self.rfile.read(length)) != length:
                self.close_connection = True
                return
            self._answer(True)

        def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
            pass

    return Handler


def udp_echo(sock, name, stop):
    prefix = f"{name} ".encode()
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65535)
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                return
            continue
        try:
            sock.sendto(prefix + data, peer)
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--udp-port", type=int, default=9000)
    args = parser.parse_args()

    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # Bind both sockets before serving, so that once HTTP answers, UDP is
    # bound too (tools/lab waits on HTTP only).
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("::", args.udp_port))
    httpd = DualStackHTTPServer(("::", args.http_port), make_handler(args.name))

    threads = [
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                         name="http", daemon=True),
        threading.Thread(target=udp_echo, args=(udp, args.name, stop),
                         name="udp", daemon=True),
    ]
    for thread in threads:
        thread.start()
    print(f"lab_server {args.name}: http [::]:{args.http_port}, "
          f"udp [::]:{args.udp_port}", flush=True)

    while not stop.wait(1.0):
        pass

    httpd.shutdown()
    httpd.server_close()
    for thread in threads:
        thread.join(timeout=2)
    udp.close()
    print(f"lab_server {args.name}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
