#!/usr/bin/env python3
"""The README's run command, after install and build: a lab with two
clients, a gateway running tollgated and three backends; real HTTP and UDP
traffic through the service address; how it spread, next to tollgate's own
counters. Tears the lab down unless --keep."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tollgate_lab import (BACKENDS_V4, GW_BACKEND_LINK, GW_CLIENT_LINK, HTTP_PORT, SERVICE_V4,  # noqa: E402
                          SERVICE_V6, UDP_PORT, Agent, Lab, backend_counters, lab_services)

BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
GREEN = "\033[32m" if sys.stdout.isatty() else ""
RED = "\033[31m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def say(text=""):
    print(text, flush=True)


def merge(reports):
    total = {"ok": 0, "failed": 0, "backends": {}, "errors": []}
    for report in reports:
        total["ok"] += report["ok"]
        total["failed"] += report["failed"]
        total["errors"] += report.get("errors", [])
        for name, count in report["backends"].items():
            total["backends"][name] = total["backends"].get(name, 0) + count
    return total


def table(title, by_family, stats, services):
    say(f"  {BOLD}{title}{RESET}")
    say(f"  {'':8}{'clients saw answers from':>28}   {DIM}{'tollgate counted (both families)':>36}{RESET}")
    say(f"  {'backend':8}{'IPv4':>10}{'IPv6':>9}{'share':>9}   "
        f"{DIM}{'new flows':>12}{'packets':>12}{'bytes':>12}{RESET}")
    total = sum(sum(r["backends"].values()) for r in by_family.values())
    for name in BACKENDS_V4:
        v4 = by_family["IPv4"]["backends"].get(name, 0)
        v6 = by_family["IPv6"]["backends"].get(name, 0)
        counters = [backend_counters(stats, s).get(name, {}) for s in services]
        flows = sum(c.get("new_flows", 0) for c in counters)
        packets = sum(c.get("packets", 0) for c in counters)
        size = sum(c.get("bytes", 0) for c in counters)
        share = (v4 + v6) / total if total else 0
        say(f"  {name:8}{v4:>10}{v6:>9}{share:>9.1%}   {DIM}{flows:>12}{packets:>12}{size:>12}{RESET}")
    failed = sum(r["failed"] for r in by_family.values())
    verdict = f"{GREEN}every request answered{RESET}" if failed == 0 else f"{RED}{failed} failed{RESET}"
    say(f"  {total} answered, {verdict}")
    for family, report in by_family.items():
        for error in report["errors"][:3]:
            say(f"    {RED}{family}: {error}{RESET}")
    say()
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the lab and tollgated running to explore")
    parser.add_argument("--requests", type=int, default=300, help="HTTP requests per address family")
    args = parser.parse_args()

    lab = Lab()
    agent = None
    keep = False
    say(f"{BOLD}tollgate{RESET}: an XDP load balancer, in a lab of network namespaces\n")
    try:
        say("  bringing the lab up: clients c1 c2 | gateway gw | backends b1 b2 b3 ...")
        lab.up()
        agent = Agent(lab, lab_services())
        agent.start()
        names = " ".join(BACKENDS_V4)
        say(f"  tollgated runs in gw: XDP on {GW_CLIENT_LINK} (client side), TC on {GW_BACKEND_LINK} (backend side)")
        say(f"  services  {SERVICE_V4}:80/tcp  [{SERVICE_V6}]:80/tcp   -> {names} port {HTTP_PORT} (HTTP)")
        say(f"            {SERVICE_V4}:53/udp  [{SERVICE_V6}]:53/udp   -> {names} port {UDP_PORT} (UDP echo)\n")

        half = max(1, args.requests // 2)
        say(f"  sending {2 * half} HTTP requests per family, each on a new connection, from c1 and c2 ...")
        http = {
            "IPv4": merge([lab.traffic(c, ["http", f"http://{SERVICE_V4}/", "--count", half]) for c in ("c1", "c2")]),
            "IPv6": merge([lab.traffic(c, ["http", f"http://[{SERVICE_V6}]/", "--count", half])
                           for c in ("c1", "c2")]),
        }
        say(f"  sending {2 * half // 3} UDP datagrams per family, each from a new port ...\n")
        udp = {
            "IPv4": merge([lab.traffic(c, ["udp", SERVICE_V4, 53, "--count", half // 3]) for c in ("c1", "c2")]),
            "IPv6": merge([lab.traffic(c, ["udp", SERVICE_V6, 53, "--count", half // 3]) for c in ("c1", "c2")]),
        }
        stats = agent.stats()
        failed = table("HTTP through the service address", http, stats,
                       [f"{SERVICE_V4}:80/tcp", f"[{SERVICE_V6}]:80/tcp"])
        failed += table("UDP echo through the service address", udp, stats,
                        [f"{SERVICE_V4}:53/udp", f"[{SERVICE_V6}]:53/udp"])
        drops = {reason: count for reason, count in stats["drops"].items() if count}
        say(f"  drops in the data path: {drops or 'none'}")

        service = f"{SERVICE_V4}:80/tcp"
        say(f"\n  {BOLD}the tollgate CLI{RESET}: tollgate backend drain {service} {BACKENDS_V4['b1']}:8080")
        agent.cli("backend", "drain", service, f"{BACKENDS_V4['b1']}:8080")
        for line in agent.cli("backend", "list", service).stdout.splitlines():
            say(f"    {line}")
        drained = lab.traffic("c1", ["http", f"http://{SERVICE_V4}/", "--count", 60])
        say(f"  60 new connections after the drain: {drained['backends']} (b1 gets none)")
        failed += drained["failed"] + drained["backends"].get("b1", 0)

        before = agent.cli_json("service", "list")
        agent.kill()
        during = lab.traffic("c1", ["http", f"http://{SERVICE_V4}/", "--count", 60])
        agent.start()
        after = agent.cli_json("service", "list")
        say(f"  kill -9 tollgated: 60 connections while it was gone, {during['failed']} failed; "
            f"restarted with {'the same' if after == before else 'a DIFFERENT'} state "
            f"(adopted from the pinned maps)")
        failed += during["failed"] + (after != before)

        if args.keep:
            keep = True
            say(f"\n  {BOLD}the lab stays up{RESET}; tollgated (pid {agent.process.pid}) logs to {agent.log_path}")
            say(f"    tools/lab exec c1 curl -s http://{SERVICE_V4}/         # ask the service yourself")
            say(f"    build/tollgate --socket {agent.socket_path} stats        # tollgate's counters")
            say("    tools/lab down                                         # remove everything")
        return 1 if failed else 0
    finally:
        if not keep:
            if agent:
                agent.stop()
            lab.down()
            say(f"\n  lab torn down {DIM}(tools/run --keep leaves it up){RESET}")


if __name__ == "__main__":
    sys.exit(main())
