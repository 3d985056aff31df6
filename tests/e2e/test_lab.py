#!/usr/bin/env python3
"""End-to-end tests: the namespace lab, the real tollgated, real traffic.

Each test brings up its own lab and tears it down, also when it fails.
Needs root; without it every test is reported skipped (exit code 77).
Run one: tests/e2e/test_lab.py LabTest.test_http_and_udp_both_families
"""

import json
import math
import os
import selectors
import subprocess
import sys
import time
import unittest
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import tollgate_lab as lab_driver  # noqa: E402
from tollgate_lab import (BACKENDS_V4, HTTP_PORT, OTHER_SERVICES_V4, PIN_DIR, SERVICE_V4, SERVICE_V6, TOPOLOGY,  # noqa: E402
                          Agent, Lab, backend_counters, lab_services, wait_until)

SKIP = 77  # ctest's SKIP_RETURN_CODE for this test

V4_HTTP = f"http://{SERVICE_V4}:80/"
V6_HTTP = f"http://[{SERVICE_V6}]:80/"
V4_WEB = f"{SERVICE_V4}:80/tcp"
NOBODY = 65534


def leftovers():
    """tg* namespaces and tollgated/lab_server processes still around."""
    prefix = TOPOLOGY["NAME_PREFIX"]
    namespaces = [line.split()[0] for line in
                  subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith(prefix)]
    links = [line for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                                             text=True).stdout.splitlines()
             if line.split(": ")[1].startswith(prefix)]
    processes = subprocess.run(["pgrep", "-af", "build/tollgated|lab_server.py"], capture_output=True,
                               text=True).stdout.splitlines()
    pins = [PIN_DIR] if os.path.exists(PIN_DIR) else []
    return namespaces + links + [p for p in processes if "pgrep" not in p] + pins


class LabTest(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()
        self.agent = None
        self.addCleanup(self.check_nothing_left)
        self.addCleanup(self.lab.down)
        self.lab.up()

    def check_nothing_left(self):
        self.assertEqual(leftovers(), [], "the test left these behind")

    def start_agent(self, config, extra=()):
        self.agent = Agent(self.lab, config)
        self.addCleanup(self.agent.stop)
        self.agent.start(extra=tuple(map(str, extra)))

    def lab_command(self, *args):
        subprocess.run([str(lab_driver.LAB), *args], check=True, capture_output=True, timeout=60)

    def switch_port_xdp(self, switch_namespace, port, mode):
        """tollgate_bench_xdp MODE on a switch's port until the test ends
        (at most 600 s, 60 s for count): `pass` passes every frame, `count`
        drops every frame that arrives on the port (all the node behind it
        sends). Returns the process; terminating it detaches the program."""
        timing = ["--warmup", "0", "--seconds", "60"] if mode == "count" else ["--seconds", "600"]
        helper = subprocess.Popen(["nsenter", f"--net=/run/netns/{switch_namespace}",
                                   str(lab_driver.BUILD / "tollgate_bench_xdp"), mode, "--interface", port, *timing],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: (helper.terminate(), helper.communicate()))
        self.assertIn("attached", helper.stdout.readline())
        return helper

    def client_port_takes_xdp_tx(self):
        """Frames the gateway sends back by XDP_TX (SYN challenges, too-big
        answers) reach the client switch: on a veth, an XDP frame is taken
        in only by a peer with an XDP program (GRO is not enough)."""
        self.switch_port_xdp(lab_driver.CLIENT_SWITCH_NS, lab_driver.GW_CLIENT_PORT, "pass")

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

    def assert_spread(self, backends, expected):
        """Each backend's count within 4.5 standard deviations of its
        binomial expectation (random source ports pick the table slots): a
        wrong spread fails, chance fails about once in 100,000 runs."""
        total = sum(expected.values())
        for name, want in expected.items():
            got = backends.get(name, 0)
            share = want / total
            allowed = 4.5 * math.sqrt(total * share * (1 - share))
            self.assertLessEqual(abs(got - want), allowed,
                                 f"{name} got {got}, expected {want} ± {allowed:.0f}: {backends}")

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

    def test_every_scheduler_spreads_real_traffic(self):
        """The IPv4 web service under each scheduler, set through the CLI,
        with weights 1:2:3 and 300 new connections from both clients."""
        self.start_agent(lab_services(weights={"b1": 1, "b2": 2, "b3": 3}))
        service = f"{SERVICE_V4}:80/tcp"
        weighted = {"b1": 50, "b2": 100, "b3": 150}
        schedulers = ("maglev", "round-robin", "random", "source-hash", "least-connections", "least-requests")
        for scheduler in schedulers:
            self.agent.cli("service", "set", service, "--scheduler", scheduler)
            listed = next(s for s in self.agent.cli_json("service", "list") if s["address"] == service)
            self.assertEqual(listed["scheduler"], scheduler)
            reports = {client: self.http(client, V4_HTTP, 150)["backends"] for client in ("c1", "c2")}
            totals = {}
            for report in reports.values():
                for name, seen in report.items():
                    totals[name] = totals.get(name, 0) + seen
            print(f"{scheduler}: 300 connections, weights 1:2:3: {totals} (by client: {reports})")
            if scheduler == "round-robin":
                # The sequence dealt out in order: exact but for a flow or two.
                for name, want in weighted.items():
                    self.assertLessEqual(abs(totals.get(name, 0) - want), 2, f"{name}: {totals}")
            elif scheduler == "source-hash":
                for client, report in reports.items():
                    self.assertEqual(len(report), 1, f"{client}'s connections went to several backends: {report}")
            else:
                # least-connections too: each connection closes before the next
                # opens, so every pair ties and the weighted draw decides;
                # least-requests spreads by the flows of the last second.
                self.assert_spread(totals, weighted)
        updates = [line for line in self.agent.audit() if line.get("action") == "service.update"]
        self.assertEqual([line["after"]["scheduler"] for line in updates], list(schedulers))

    def test_least_connections_keeps_new_connections_off_a_busy_backend(self):
        """b1 holds 50 kept-alive connections: new ones go to b2 and b3
        until those close, then to all three again."""
        self.start_agent(lab_services())
        self.agent.cli("service", "set", V4_WEB, "--scheduler", "least-connections")
        others = [f"{BACKENDS_V4[name]}:{HTTP_PORT}" for name in ("b2", "b3")]
        for backend in others:
            self.agent.cli("backend", "set", V4_WEB, backend, "--state", "draining")
        stop = self.stop_file("hold")
        holder = self.lab.start_traffic("c1", ["hold", V4_HTTP, "--connections", 50, "--duration", 120,
                                               "--stop-file", str(stop)])
        self.addCleanup(lambda: holder.poll() is None and holder.kill())
        selector = selectors.DefaultSelector()
        selector.register(holder.stderr, selectors.EVENT_READ)
        self.assertTrue(selector.select(timeout=30), "the 50 connections did not open within 30 s")
        self.assertEqual(holder.stderr.readline().strip(), "ready")
        for backend in others:
            self.agent.cli("backend", "set", V4_WEB, backend, "--state", "up")

        busy = self.http("c2", V4_HTTP, 100)["backends"]
        print(f"b1 holding 50 connections, 100 new ones: {busy}")
        self.assertLessEqual(busy.get("b1", 0), 2, f"the busy backend took new connections: {busy}")

        stop.touch()
        out, err = holder.communicate(timeout=60)
        held = json.loads(out)
        self.assertEqual(held["failed"], 0, f"{held} {err}")
        self.assertEqual(held["backends"], {"b1": 50}, held)
        after = self.http("c2", V4_HTTP, 90)["backends"]
        print(f"the 50 closed, 90 new connections: {after}")
        self.assertGreaterEqual(after.get("b1", 0), 10, f"b1 got (almost) nothing after its connections closed: {after}")

    def test_long_lived_connection_survives_backend_changes(self):
        self.start_agent(lab_services(names=("b1", "b2")))
        stop_file = self.stop_file("stream")
        stream, stream_backend = self.start_stream(str(stop_file))

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

        stop_file.touch()
        out, err = stream.communicate(timeout=30)
        result = json.loads(out)
        print(f"stream: {result['ok']} requests on one connection to {result['backend']}, "
              f"{result['failed']} failed")
        # The stream's last request comes after the stop file, so after every
        # change: none failed, and it was answered (not a count of how many
        # fit in the time, which is the machine's speed).
        self.assertEqual(result["failed"], 0, f"{result} {err}")
        self.assertGreaterEqual(result["ok"], 2, result)

    def start_stream(self, stop_file):
        """A keep-alive connection through the service; returns (process, its backend).
        lab_traffic.py says "ready BACKEND" on stderr after the first answer.
        A request may wait 10 s: on a machine that does not carry a flood the
        path loses the stream's segments too, and TCP's retransmissions (0.2,
        0.4, 0.8 s ...) outlast a short wait; a connection tollgate broke
        fails at once (a reset, another backend), not slowly."""
        stream = self.lab.start_traffic("c1", ["stream", V4_HTTP, "--duration", 120, "--timeout", 10,
                                               "--stop-file", stop_file])
        self.addCleanup(lambda: stream.poll() is None and stream.kill())
        selector = selectors.DefaultSelector()
        selector.register(stream.stderr, selectors.EVENT_READ)
        self.assertTrue(selector.select(timeout=15), "the stream did not start within 15 s")
        first = stream.stderr.readline().split()
        self.assertEqual(first[:1], ["ready"], f"stream did not start: {first}")
        return stream, first[1]

    def new_flows(self, service=V4_WEB):
        return sum(c["new_flows"] for c in backend_counters(self.agent.stats(), service).values())

    def stop_file(self, name):
        path = Path(f"/tmp/tollgate-e2e-{name}")
        path.unlink(missing_ok=True)
        self.addCleanup(lambda: path.unlink(missing_ok=True))
        return path

    def test_kill_9_and_restart_under_load_fails_nothing(self):
        self.start_agent(lab_services())
        # State made through the API must survive too: b3 drained.
        self.agent.cli("backend", "drain", V4_WEB, f"{BACKENDS_V4['b3']}:8080")
        state_before = self.agent.cli_json("service", "list")
        stop = self.stop_file("restart")
        stream, stream_backend = self.start_stream(str(stop))
        load = self.lab.start_traffic("c2", ["http", V4_HTTP, "--count", 50000, "--stop-file", stop])
        self.addCleanup(lambda: load.poll() is None and load.kill())

        start = self.new_flows()
        wait_until(lambda: self.new_flows() >= start + 100, 30, "load through the service")
        self.agent.kill()
        killed = time.monotonic()
        self.agent.start()
        restart = time.monotonic() - killed
        mark = self.new_flows()
        wait_until(lambda: self.new_flows() >= mark + 100, 30, "load through the service after the restart")
        self.assertIsNone(load.poll(), "the load ended before the restart was over; it proves nothing")
        stop.touch()
        load_result = json.loads(load.communicate(timeout=60)[0])
        stream_result = json.loads(stream.communicate(timeout=60)[0])
        print(f"kill -9 and restart took {restart:.2f} s; new connections: {load_result['ok']} ok, "
              f"{load_result['failed']} failed {load_result['backends']}; keep-alive connection to "
              f"{stream_backend}: {stream_result['ok']} ok, {stream_result['failed']} failed")
        self.assertEqual(load_result["failed"], 0, load_result)
        self.assertEqual(stream_result["failed"], 0, stream_result)
        self.assertNotIn("b3", load_result["backends"], "the drained backend got new connections")
        self.assertEqual(self.agent.cli_json("service", "list"), state_before)
        self.assertTrue(self.agent.cli_json("status")["adopted"])

    def test_non_root_caller_is_refused_and_audited(self):
        # The socket's group may connect (0660), and is still refused by its
        # credentials: it is not an --allow-gid. Outside the group, a caller
        # cannot even connect.
        self.start_agent(lab_services(), extra=("--api-group", NOBODY))
        self.assertEqual(oct(os.stat(self.agent.socket_path).st_mode & 0o7777), oct(0o660))
        before = self.agent.cli_json("service", "list")
        backend = f"{BACKENDS_V4['b1']}:8080"
        for args in (("backend", "rm", V4_WEB, backend), ("service", "list")):
            refused = self.agent.cli(*args, uid=NOBODY, check=False)
            self.assertEqual(refused.returncode, 1, refused)
            self.assertIn("HTTP 403", refused.stderr)
            self.assertIn(f"uid {NOBODY}", refused.stderr)
        outside = self.agent.cli("service", "list", uid=NOBODY, gid=NOBODY - 1, check=False)
        self.assertEqual(outside.returncode, 1, outside)
        self.assertIn("permission denied", outside.stderr)
        self.assertEqual(self.agent.cli_json("service", "list"), before)
        denied = [e for e in self.agent.audit() if e.get("result") == "denied"]
        self.assertEqual(len(denied), 2, self.agent.audit())
        self.assertEqual({e["actor"]["caller"]["uid"] for e in denied}, {NOBODY})
        self.assertTrue(denied[0]["action"].startswith("DELETE /v1/services/"), denied[0])
        self.assertIn("tollgate", denied[0]["actor"]["caller"]["command_line"])

    def test_every_mutation_is_audited(self):
        self.start_agent(lab_services(names=("b1", "b2")))
        web2 = f"{OTHER_SERVICES_V4[0]}:80/tcp"
        b1, b2 = f"{BACKENDS_V4['b1']}:8080", f"{BACKENDS_V4['b2']}:8080"
        cli = self.agent.cli
        cli("service", "add", web2, "--backend", b1)
        self.assertEqual(self.lab.traffic("c1", ["http", f"http://{OTHER_SERVICES_V4[0]}/", "--count", 10])["backends"],
                         {"b1": 10})
        cli("backend", "add", web2, b2, "--weight", 3)
        cli("backend", "set", web2, b2, "--weight", 2)
        cli("backend", "drain", web2, b2)
        cli("backend", "rm", web2, b2)
        cli("conntrack", "flush")
        cli("service", "rm", web2)
        missing = cli("backend", "add", web2, b2, check=False)
        self.assertEqual(missing.returncode, 1)
        # A bad body straight to the API: 400 naming the field; nothing changes.
        before = self.agent.cli_json("service", "list")
        answer = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", str(self.agent.socket_path),
                                 "-X", "POST", "-d", '{"address": "198.18.1.14:99999"}',
                                 f"http://tollgate/v1/services/{urllib.parse.quote(V4_WEB, safe='')}/backends"],
                                capture_output=True, text=True, timeout=30)
        body, code = answer.stdout.rsplit("\n", 1)
        self.assertEqual(code, "400", answer.stdout)
        self.assertTrue(json.loads(body)["error"].startswith("address:"), body)
        self.assertEqual(self.agent.cli_json("service", "list"), before)

        audit = self.agent.audit()
        actions = [(e["action"], e.get("object"), e["result"]) for e in audit if "action" in e]
        self.assertEqual(actions[-9:], [
            ("service.add", web2, "ok"),
            ("backend.add", f"{web2} {b2}", "ok"),
            ("backend.update", f"{web2} {b2}", "ok"),
            ("backend.update", f"{web2} {b2}", "ok"),
            ("backend.remove", f"{web2} {b2}", "ok"),
            ("conntrack.flush", "conntrack", "ok"),
            ("service.remove", web2, "ok"),
            ("backend.add", web2, "not_found"),
            ("backend.add", f"{V4_WEB}", "invalid"),
        ], audit)
        update = [e for e in audit if e.get("action") == "backend.update"][0]
        self.assertEqual((update["before"]["weight"], update["after"]["weight"]), (3, 2))
        self.assertEqual(update["actor"]["caller"]["uid"], 0)
        self.assertIn("backend set", update["actor"]["caller"]["command_line"])
        changes = [(e["backend"], e["before"], e["after"]) for e in audit
                   if e.get("event") == "backend_state" and e["service"] == web2]
        self.assertEqual(changes, [(b1, "absent", "up"), (b2, "absent", "up"), (b2, "up", "draining"),
                                   (b2, "draining", "absent"), (b1, "up", "absent")])

    def test_sighup_with_broken_config_changes_nothing(self):
        self.start_agent(lab_services())
        before = self.agent.cli_json("service", "list")
        good = lab_services()
        bad_weight = json.loads(json.dumps(good))
        bad_weight["services"][0]["backends"][1]["weight"] = 0
        unknown_field = json.loads(json.dumps(good))
        unknown_field["services"][1]["backend"] = []
        broken = {
            "truncated JSON": (json.dumps(good)[:-7], "line 1, column"),
            "weight 0": (bad_weight, "services[0].backends[1].weight: 0 is out of range"),
            "unknown field": (unknown_field, "services[1].backend: unknown field"),
        }
        for name, (config, where) in broken.items():
            with self.subTest(name):
                self.agent.reconfigure(config, expect_applied=False)
                self.assertIn(where, self.agent.log().splitlines()[-1])
                self.assertEqual(self.agent.cli_json("service", "list"), before)
                self.http("c1", V4_HTTP, 10)
        reloads = [e for e in self.agent.audit() if e.get("action") == "config.reload"]
        self.assertEqual([e["result"] for e in reloads], ["invalid"] * 3)
        # The same file fixed is applied.
        self.agent.reconfigure(lab_services(names=("b1", "b2")))
        self.assertEqual(len(self.agent.cli_json("service", "list")[0]["backends"]), 2)

    def test_kernel_netfilter_and_conntrack_are_not_involved(self):
        self.start_agent(lab_services())
        # Count, in the gateway, every packet netfilter sees to or from a
        # backend port; such a rule also turns conntrack on for the namespace.
        ruleset = """
table inet tgprobe {
  chain prerouting { type filter hook prerouting priority -300;
    tcp dport 8080 ct state new counter; tcp dport 8080 counter; tcp sport 8080 counter; }
  chain forward { type filter hook forward priority 0;
    tcp dport 8080 counter; tcp sport 8080 counter; udp dport 9000 counter; udp sport 9000 counter;
    udp dport 9999 counter; }
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

        # The same rules do count traffic the kernel forwards itself: three
        # datagrams to a port of b1 that no service has (what a backend's
        # service port sends outside a flow is dropped at the gateway).
        send = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "[s.sendto(b'direct', (sys.argv[1], 9999)) for _ in range(3)]")
        self.lab.run("c1", ["python3", "-c", send, lab_driver.BACKENDS_V4["b1"]])
        counters = self.lab.run("gw", ["nft", "list", "table", "inet", "tgprobe"]).stdout
        packets = [int(part.split()[1]) for part in counters.split("counter")[1:]]
        self.assertGreater(sum(packets), 0, f"control traffic was not counted:\n{counters}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIPPED: the e2e tests need root (network namespaces, BPF)")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
