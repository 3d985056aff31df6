#!/usr/bin/env python3
"""End-to-end edges: path MTU, ICMP errors, fragments and the reply path,
through the namespace lab with the real tollgated.

Run one: tests/e2e/test_edges.py EdgeTest.test_path_mtu_below_what_the_backends_advertise
"""

import json
import os
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from test_lab import SKIP, V4_HTTP, V6_HTTP, LabTest  # noqa: E402
from tollgate_lab import (BACKEND_SWITCH_NS, BACKENDS_V4, BACKENDS_V6, CLIENTS_V4, SERVICE_V4, SERVICE_V6,  # noqa: E402
                          SWITCH_PORT_PREFIX, lab_services, wait_until)

NARROW_MTU = 1400
TOO_BIG_ANSWERED = 'tollgate_drops_total{reason="frame_too_big_answered"}'
FRAGMENT_DROPS = ('tollgate_drops_total{reason="ipv4_fragment"}', 'tollgate_drops_total{reason="ipv6_fragment"}')
REPLY_NO_FLOW = 'tollgate_drops_total{reason="reply_no_flow"}'
CLIENT_SIDE_MTU = 1300

# Run in a client: one keep-alive connection to the service; after its
# answer, an ICMP fragmentation needed (MTU argv[2]) to the service quoting
# the answer's next byte, as a router on the client side would send it.
# Prints "BACKEND PORT" and waits for its stdin to close.
CLIENT_TOO_BIG = """
import socket, struct, sys
service, mtu = sys.argv[1], int(sys.argv[2])
watch = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
conn = socket.create_connection((service, 80), timeout=10)
port = conn.getsockname()[1]
conn.sendall(b"GET / HTTP/1.1\\r\\nHost: lab\\r\\n\\r\\n")
answer = b""
while b"backend" not in answer or not answer.endswith(b"\\n"):
    answer += conn.recv(4096)
backend = answer.split(b"backend ")[1].split()[0].decode()
watch.settimeout(0.5)
next_seq = None
try:
    while True:
        frame = watch.recv(65535)
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6 or socket.inet_aton(service) != ip[12:16]:
            continue
        tcp = ip[ihl:]
        sport, dport, seq = struct.unpack_from("!HHI", tcp)
        if (sport, dport) != (80, port):
            continue
        length = struct.unpack_from("!H", ip, 2)[0] - ihl - (tcp[12] >> 4) * 4
        next_seq = (seq + length) & 0xffffffff
except socket.timeout:
    pass
quoted = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1500, 0, 0x4000, 63, 6, 0, socket.inet_aton(service),
                     socket.inet_aton(conn.getsockname()[0])) + struct.pack("!HHI", 80, port, next_seq)
icmp = bytearray(struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quoted)
total = sum(struct.unpack("!%dH" % (len(icmp) // 2), icmp))
total = (total & 0xffff) + (total >> 16)
struct.pack_into("!H", icmp, 2, ~((total & 0xffff) + (total >> 16)) & 0xffff)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
raw.sendto(bytes(icmp), (service, 0))
print(backend, port, flush=True)
sys.stdin.read()
"""


class EdgeTest(LabTest):
    def test_path_mtu_below_what_the_backends_advertise(self):
        """The backends advertise the MSS of a 1500-byte path behind a
        1400-byte one: the client's full-sized segments are answered with
        ICMP too big at the gateway, its TCP lowers its segment size, and
        requests of 3 kB and 100 kB complete over both families."""
        self.client_port_takes_xdp_tx()
        self.start_agent(lab_services())
        self.lab_command("mtu", str(NARROW_MTU))
        for url in (V4_HTTP, V6_HTTP):
            for size in (3000, 100000):
                report = self.lab.traffic("c1", ["http", url, "--count", 3, "--body-bytes", size,
                                                 "--timeout", 10])
                self.assertEqual((report["ok"], report["failed"]), (3, 0), f"POST {size} B to {url}: {report}")
        answered = self.agent.metrics()[TOO_BIG_ANSWERED]
        # At least one answer per family (the client caches the path MTU).
        self.assertGreaterEqual(answered, 2, "no too-big answer counted")
        for address, family in ((SERVICE_V4, "-4"), (SERVICE_V6, "-6")):
            route = self.lab.run("c1", ["ip", family, "route", "get", address]).stdout
            self.assertIn(f"mtu {NARROW_MTU}", route, f"c1 did not learn the path MTU to {address}")
        print(f"path MTU {NARROW_MTU}: POSTs of 3 kB and 100 kB completed over IPv4 and IPv6; "
              f"{answered:.0f} too-big answers sent by the gateway")

    def test_a_moved_flows_late_answer_never_reaches_the_client(self):
        """b2 hears the SYNs but what it sends is lost at its switch port: L4
        retry moves each of its flows to another backend on the client's
        retransmission. Once b2 is heard again, its TCP sends its SYN-ACKs
        once more, for flows it no longer has: they are dropped at the
        gateway, and nothing from a backend's own address reaches the
        client."""
        self.start_agent(lab_services())
        stop = self.stop_file("late-answers")
        watch = self.lab.start_traffic("c1", ["watch", "--duration", 120, "--stop-file", str(stop)])
        self.addCleanup(lambda: watch.poll() is None and watch.kill())
        self.assertEqual(watch.stderr.readline().strip(), "ready")
        mute = self.switch_port_xdp(BACKEND_SWITCH_NS, SWITCH_PORT_PREFIX + "b2", "count")
        # A SYN to b2 waits for its retransmission (1 s) and connects elsewhere.
        report = self.lab.traffic("c1", ["http", V4_HTTP, "--count", 30, "--timeout", 10])
        retried = self.agent.metrics()[f'tollgate_backend_retried_total{{service="{SERVICE_V4}:80/tcp",'
                                       f'backend="{BACKENDS_V4["b2"]}:8080"}}']
        mute.terminate()
        mute.wait(timeout=30)
        heard = time.monotonic()
        if retried:
            # b2's TCP sends a SYN-ACK again 1, 3, 7, 15 s after the SYN.
            wait_until(lambda: self.agent.metrics()[REPLY_NO_FLOW] >= 1, 30, "b2's late SYN-ACK at the gateway")
        dropped_after = time.monotonic() - heard
        stop.touch()
        seen = json.loads(watch.communicate(timeout=30)[0])["sources"]
        late = self.agent.metrics()[REPLY_NO_FLOW]
        print(f"b2 unheard, 30 connections: {report['ok']} ok {report['backends']}, {retried:.0f} moved from b2; "
              f"heard again, its first late SYN-ACK dropped at the gateway after {dropped_after:.1f} s "
              f"({late:.0f} in all); c1 received from {sorted(seen)}")
        self.assertEqual(report["failed"], 0, report)
        self.assertGreaterEqual(retried, 1, "no SYN went to b2; the test proves nothing")
        leaked = {a: n for a, n in seen.items() if a in BACKENDS_V4.values() or a in BACKENDS_V6.values()}
        self.assertEqual(leaked, {}, "packets from a backend's own address reached the client")

    def test_client_side_too_big_reaches_the_flows_backend(self):
        """A router on the client side sends ICMP fragmentation needed to the
        service about an answer: the gateway hands it to the flow's backend
        (quote translated), whose route cache learns the MTU."""
        self.start_agent(lab_services())
        probe = subprocess.Popen(self.lab.command("c1", ["python3", "-c", CLIENT_TOO_BIG, SERVICE_V4,
                                                         str(CLIENT_SIDE_MTU)]),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: probe.poll() is None and probe.kill())
        backend, port = probe.stdout.readline().split()
        client = CLIENTS_V4["c1"]

        def learned():
            return f"mtu {CLIENT_SIDE_MTU}" in self.lab.run(backend, ["ip", "route", "get", client]).stdout
        wait_until(learned, 10, f"{backend}'s route to {client} to learn MTU {CLIENT_SIDE_MTU}")
        probe.communicate("", timeout=30)
        route = self.lab.run(backend, ["ip", "route", "get", client]).stdout.split()
        print(f"ICMP frag needed (MTU {CLIENT_SIDE_MTU}) from c1 about the answer on port {port}: "
              f"{backend} learned it: {' '.join(route)}")

    def test_fragmented_datagrams_are_echoed(self):
        """UDP datagrams of 4 kB, fragmented by c1's kernel (MTU 1500) and
        echoed by the backend, fragmented again by its kernel: every
        fragment follows its first to the flow's backend, and every fragment
        of the answer comes back from the service address, over IPv4 and
        IPv6."""
        self.start_agent(lab_services())
        count, size = 20, 4000

        def packets(address):
            series = f'tollgate_backend_packets_total{{service="{address}:53/udp"'
            return sum(v for k, v in self.agent.metrics().items() if k.startswith(series))
        for address in (SERVICE_V4, SERVICE_V6):
            report = self.lab.traffic("c1", ["udp", address, 53, "--count", count, "--payload-bytes", size,
                                             "--timeout", 2])
            self.assertEqual((report["ok"], report["failed"]), (count, 0), f"{size} B datagrams to {address}: {report}")
            # 4,000 bytes in 1,500-byte frames: three fragments a datagram.
            sent = packets(address if address == SERVICE_V4 else f"[{address}]")
            self.assertGreaterEqual(sent, 3 * count, f"{address}: the datagrams did not arrive in fragments")
            print(f"{count} datagrams of {size} B to {address}: {report['ok']} echoed {report['backends']}, "
                  f"{sent:.0f} fragments steered")
        metrics = self.agent.metrics()
        self.assertEqual([metrics[name] for name in FRAGMENT_DROPS], [0, 0], "fragments dropped")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIPPED: the e2e tests need root (network namespaces, BPF)")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
