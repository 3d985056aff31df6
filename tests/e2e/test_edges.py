#!/usr/bin/env python3
"""End-to-end edges: path MTU, ICMP errors, fragments and the reply path,
through the namespace lab with the real tollgated.

Run one: tests/e2e/test_edges.py EdgeTest.test_path_mtu_below_what_the_backends_advertise
"""

import os
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from test_lab import SKIP, V4_HTTP, V6_HTTP, LabTest  # noqa: E402
from tollgate_lab import LAB, SERVICE_V4, SERVICE_V6, lab_services  # noqa: E402

NARROW_MTU = 1400
TOO_BIG_ANSWERED = 'tollgate_drops_total{reason="frame_too_big_answered"}'


class EdgeTest(LabTest):
    def narrow_backend_side(self):
        subprocess.run([str(LAB), "mtu", str(NARROW_MTU)], check=True, stdout=subprocess.DEVNULL)

    def test_path_mtu_below_what_the_backends_advertise(self):
        """The backends advertise the MSS of a 1500-byte path behind a
        1400-byte one: the client's full-sized segments are answered with
        ICMP too big at the gateway, its TCP lowers its segment size, and
        requests of 3 kB and 100 kB complete over both families."""
        self.client_port_takes_xdp_tx()
        self.start_agent(lab_services())
        self.narrow_backend_side()
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


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIPPED: the e2e tests need root (network namespaces, BPF)")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
