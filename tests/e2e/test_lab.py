#!/usr/bin/env python3
"""End-to-end tests: the namespace lab, the real tollgated, real traffic.

Each test brings up its own lab and tears it down, also when it fails.
Needs root; without it every test is reported skipped (exit code 77).
Run one: tests/e2e/test_lab.py LabTest.test_http_and_udp_both_families
"""

import json
import os
import selectors
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import tollgate_lab as lab_driver  # noqa: E402
from tollgate_lab import (SERVICE_V4, SERVICE_V6, Agent, Lab, backend_counters,  # noqa: E402
                          lab_services)

SKIP = 77  # ctest's SKIP_RETURN_CODE for this test

V4_HTTP = f"http://{SERVICE_V4}:80/"
V6_HTTP = f"http://[{SERVICE_V6}]:80/"


def leftovers():
    """tg* namespaces and tollgated/lab_server processes still around."""
    namespaces = [line.split()[0] for line in
                  subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("tg")]
    links = [line for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                                             text=True).stdout.splitlines()
             if line.split(": ")[1].startswith("tg")]
    processes = subprocess.run(["pgrep", "-af", "build/tollgated|lab_server.py"], capture_output=True,
                               text=True).stdout.splitlines()
    return namespaces + links + [p for p in processes if "pgrep" not in p]


class LabTest(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()
        self.agent = None
        self.addCleanup(self.check_nothing_left)
        self.addCleanup(self.lab.down)
        self.lab.up()

    def check_nothing_left(self):
        self.assertEqual(leftovers(), [], "the test left these behind")

    def start_agent(self, config):
        self.agent = Agent(self.lab, config)
        self.addCleanup(self.agent.stop)
        self.agent.start()

    def http(self, client, url, count):
        report = self.lab.traffic(client, ["http", url, "--count", count])
        self.assertEqual(report["failed"], 0, f"{client} -> {url}: {report}")
        self.assertEqual(report["ok"], count)
        return report

    def udp(self, client, address, count):
        report = self.lab.traffic(client, ["udp", address, 53, "--count", count])
        self.assertEqual(report["failed"], 0, f"{client} -> udp {address}: {report}")
        self.assertEqual(report["ok"], count)
        return report

    def test_http_and_udp_both_families(self):
        self.start_agent(lab_services())
        for client in ("c1", "c2"):
            for url in (V4_HTTP, V6_HTTP):
                report = self.http(client, url, 60)
                self.assertEqual(set(report["backends"]), {"b1", "b2", "b3"}, report)
            for address in (SERVICE_V4, SERVICE_V6):
                report = self.udp(client, address, 60)
                self.assertEqual(set(report["backends"]), {"b1", "b2", "b3"}, report)

        stats = self.agent.stats()
        for service in (f"{SERVICE_V4}:80/tcp", f"[{SERVICE_V6}]:80/tcp"):
            flows = sum(c["new_flows"] for c in backend_counters(stats, service).values())
            self.assertEqual(flows, 120, f"tollgate counted {flows} new flows for {service}")

    def assert_spread(self, backends, expected, tolerance=0.15):
        for name, want in expected.items():
            got = backends.get(name, 0)
            self.assertLessEqual(abs(got - want), want * tolerance,
                                 f"{name} got {got}, expected {want} ± {tolerance:.0%}: {backends}")

    def spread(self, count):
        """`count` new connections, half from each client, over IPv4."""
        totals = {}
        for client in ("c1", "c2"):
            report = self.http(client, V4_HTTP, count // 2)
            for name, seen in report["backends"].items():
                totals[name] = totals.get(name, 0) + seen
        return totals

    def test_new_connections_spread_by_weight(self):
        self.start_agent(lab_services())
        before = backend_counters(self.agent.stats(), f"{SERVICE_V4}:80/tcp")
        totals = self.spread(600)
        print(f"600 connections, equal weights: {totals}")
        self.assert_spread(totals, {"b1": 200, "b2": 200, "b3": 200})
        after = backend_counters(self.agent.stats(), f"{SERVICE_V4}:80/tcp")
        for name in ("b1", "b2", "b3"):
            self.assertEqual(after[name]["new_flows"] - before[name]["new_flows"], totals[name],
                             f"tollgate's new-flow counter for {name} disagrees with what clients saw")

        self.agent.reconfigure(lab_services(weights={"b1": 1, "b2": 1, "b3": 2}))
        totals = self.spread(600)
        print(f"600 connections, weights 1:1:2: {totals}")
        self.assert_spread(totals, {"b1": 150, "b2": 150, "b3": 300})

    def test_long_lived_connection_survives_backend_changes(self):
        self.start_agent(lab_services(names=("b1", "b2")))
        stop_file = "/tmp/tollgate-e2e-stream-stop"
        Path(stop_file).unlink(missing_ok=True)
        stream = self.lab.start_traffic("c1", ["stream", V4_HTTP, "--duration", 60, "--stop-file", stop_file])
        self.addCleanup(lambda: stream.poll() is None and stream.kill())
        # lab_traffic.py says "ready BACKEND" on stderr after the first answer.
        selector = selectors.DefaultSelector()
        selector.register(stream.stderr, selectors.EVENT_READ)
        self.assertTrue(selector.select(timeout=15), "the stream did not start within 15 s")
        first = stream.stderr.readline().split()
        self.assertEqual(first[:1], ["ready"], f"stream did not start: {first}")
        stream_backend = first[1]

        self.agent.reconfigure(lab_services(names=("b1", "b2", "b3")))  # a backend added
        report = self.http("c2", V4_HTTP, 30)
        self.assertIn("b3", report["backends"], "the added backend got no new connections")
        self.agent.reconfigure(lab_services(names=("b1", "b2", "b3"), weights={"b1": 3, "b2": 5, "b3": 1}))
        self.http("c2", V4_HTTP, 30)
        # Remove another backend than the stream's.
        removed = "b2" if stream_backend == "b1" else "b1"
        remaining = [n for n in ("b1", "b2", "b3") if n != removed]
        self.agent.reconfigure(lab_services(names=remaining))
        report = self.http("c2", V4_HTTP, 30)
        self.assertNotIn(removed, report["backends"], "a removed backend still got new connections")

        Path(stop_file).touch()
        self.addCleanup(lambda: Path(stop_file).unlink(missing_ok=True))
        out, err = stream.communicate(timeout=30)
        result = json.loads(out)
        print(f"stream: {result['ok']} requests on one connection to {result['backend']}, "
              f"{result['failed']} failed")
        self.assertEqual(result["failed"], 0, f"{result} {err}")
        self.assertGreater(result["ok"], 10)

    def test_kernel_netfilter_and_conntrack_are_not_involved(self):
        self.start_agent(lab_services())
        # Count, in the gateway, every packet netfilter sees to or from a
        # backend port; such a rule also turns conntrack on for the namespace.
        ruleset = """
table inet tgprobe {
  chain prerouting { type filter hook prerouting priority -300;
    tcp dport 8080 ct state new counter; tcp dport 8080 counter; tcp sport 8080 counter; }
  chain forward { type filter hook forward priority 0;
    tcp dport 8080 counter; tcp sport 8080 counter; udp dport 9000 counter; udp sport 9000 counter; }
}
"""
        subprocess.run(self.lab.command("gw", ["nft", "-f", "-"]), input=ruleset, text=True, check=True)

        self.http("c1", V4_HTTP, 50)
        self.http("c2", V6_HTTP, 50)
        self.udp("c1", SERVICE_V4, 50)
        counters = self.lab.run("gw", ["nft", "list", "table", "inet", "tgprobe"]).stdout
        packets = [int(part.split()[1]) for part in counters.split("counter")[1:]]
        self.assertTrue(packets and all(p == 0 for p in packets),
                        f"netfilter saw load-balanced packets:\n{counters}")

        # The same rules do count traffic the kernel forwards itself.
        direct = self.lab.traffic("c1", ["http", f"http://{lab_driver.BACKENDS_V4['b1']}:8080/", "--count", 5])
        self.assertEqual(direct["ok"], 5, direct)
        counters = self.lab.run("gw", ["nft", "list", "table", "inet", "tgprobe"]).stdout
        packets = [int(part.split()[1]) for part in counters.split("counter")[1:]]
        self.assertGreater(sum(packets), 0, f"control traffic was not counted:\n{counters}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIPPED: the e2e tests need root (network namespaces, BPF)")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
