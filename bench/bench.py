#!/usr/bin/python3
"""tollgate's benchmarks: runs every figure, prints tables, writes RESULTS.md.

  1. data-path cost per packet (build/tollgate_bench_datapath: cost)
  2. forwarding in the lab: tollgate against plain routing, nftables DNAT
     laid out as kube-proxy's nftables mode does, HAProxy in TCP mode, and a
     bare XDP redirect; modes interleaved, round after round
  3. control plane and scale (tollgate_bench_datapath: scale, control,
     memory) and tollgated's resident memory, idle and with 10,000 services

Run through bench/run (root; it installs and builds first). Every load is
bounded in time and count; every process this starts is stopped by its own
handle, and the lab is torn down at the end, also on failure.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import tollgate_lab as lab_kit  # noqa: E402

BUILD = lab_kit.BUILD
XDP_TOOL = BUILD / "tollgate_bench_xdp"
VIP = lab_kit.SERVICE_V4
BACKENDS = lab_kit.BACKENDS_V4
HTTP_PORT, UDP_PORT, IPERF_PORT = 8090, 9001, 5201
GW_C_MAC = lab_kit.GW_CLIENT_MAC
CLIENT_MACS = lab_kit.CLIENT_MACS
CLIENT_ADDRESSES = lab_kit.CLIENTS_V4
STATE = Path("/run/tollgate-lab/bench")  # inside the lab's state dir: `tools/lab down` removes it
SECONDS = 3  # each load runs this long (counted: the last SECONDS - 1)

MODES = ("plain", "nftables", "haproxy", "tollgate", "redirect")
MODE_NAMES = {"plain": "plain routing", "nftables": "nftables DNAT", "haproxy": "HAProxy (TCP)",
              "tollgate": "tollgate", "redirect": "bare XDP redirect"}
# Which tests each mode runs: the bare redirect only moves frames between
# the two veths (no balancing, no replies); HAProxy only proxies TCP.
TESTS = {"gateway_pps": ("plain", "nftables", "tollgate", "redirect"),
         "udp_pps": ("plain", "nftables", "tollgate"),
         "http_close_rps": ("plain", "nftables", "haproxy", "tollgate"),
         "http_keepalive_rps": ("plain", "nftables", "haproxy", "tollgate"),
         "tcp_bulk_gbps": ("plain", "nftables", "haproxy", "tollgate")}
TEST_NAMES = {"gateway_pps": "gateway packet rate, 64 B UDP, counted at the gateway's egress (pps)",
              "udp_pps": "UDP 64 B end to end, counted at the backends (pps)",
              "http_close_rps": "HTTP, a new connection per request (req/s)",
              "http_keepalive_rps": "HTTP, kept-alive connections (req/s)",
              "tcp_bulk_gbps": "bulk TCP, one stream, iperf3 (Gbit/s)"}


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(command, timeout=60, check=True, **kwargs):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout,
                          check=check, **kwargs)


def ns(node, *command):
    return ["nsenter", f"--net=/run/netns/{lab_kit.namespace(node)}", "--", *map(str, command)]


def summary(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "runs": len(values)}


# --- frames -------------------------------------------------------------------

def checksum(data):
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(source_mac, source, destination, port):
    """Ethernet + IPv4 + UDP with 18 bytes of payload: a 64-byte frame on the wire."""
    payload = bytes(18)
    udp = (10000).to_bytes(2, "big") + port.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + bytes(2)
    header = bytearray(bytes([0x45, 0]) + (20 + len(udp) + len(payload)).to_bytes(2, "big") + bytes(2) +
                       bytes([0x40, 0, 64, 17]) + bytes(2) + bytes(map(int, source.split("."))) +
                       bytes(map(int, destination.split("."))))
    header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
    mac = lambda text: bytes.fromhex(text.replace(":", ""))  # noqa: E731
    return (mac(GW_C_MAC) + mac(source_mac) + b"\x08\x00" + bytes(header) + udp + payload).hex()


# --- the lab's servers and the modes ----------------------------------------------

class Servers:
    """nginx (HTTP :8090) in every backend, iperf3 (:5201) in b1."""

    def __init__(self):
        self.processes = []

    def start(self):
        STATE.mkdir(parents=True, exist_ok=True)
        for name in BACKENDS:
            config = STATE / f"nginx-{name}.conf"
            config.write_text(f"""
worker_processes 2;
daemon off;
pid {STATE}/nginx-{name}.pid;
error_log {STATE}/nginx-{name}.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {STATE}/nginx-{name}-body;
  proxy_temp_path {STATE}/nginx-{name}-proxy;
  server {{
    listen {HTTP_PORT} reuseport backlog=8192;
    location / {{ return 200 "backend {name}\\n"; }}
  }}
}}
""")
            self.processes.append(subprocess.Popen(ns(name, "nginx", "-c", config), stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
        self.processes.append(subprocess.Popen(ns("b1", "iperf3", "-s", "-p", IPERF_PORT), stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        for name, address in BACKENDS.items():
            lab_kit.wait_until(lambda: run(ns("gw", "curl", "-sf", "--max-time", "1", f"http://{address}:{HTTP_PORT}/"),
                                           check=False).stdout.strip() == f"backend {name}", 10, f"nginx in {name}")
        lab_kit.wait_until(lambda: run(ns("b1", "ss", "-Hltn", f"sport = :{IPERF_PORT}")).stdout.strip(), 10,
                           "iperf3 in b1")

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


def nft_ruleset():
    """DNAT laid out as kube-proxy's nftables mode: a verdict map from
    address . protocol . port to a service chain, which picks an endpoint
    chain with numgen random over a verdict map."""
    endpoints = list(BACKENDS.values())
    lines = ["table ip tgbench {"]
    services = [("http", "tcp", 80, [(a, HTTP_PORT) for a in endpoints]),
                ("udp", "udp", UDP_PORT, [(a, UDP_PORT) for a in endpoints]),
                ("iperf", "tcp", IPERF_PORT, [(endpoints[0], IPERF_PORT)])]
    lines.append("  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict")
    lines.append("    elements = { " + ", ".join(f"{VIP} . {proto} . {port} : goto svc-{name}"
                                                  for name, proto, port, _ in services) + " }\n  }")
    lines.append("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;")
    lines.append("    ip daddr . meta l4proto . th dport vmap @service-ips\n  }")
    for name, proto, _, targets in services:
        vmap = ", ".join(f"{i} : goto sep-{name}-{i}" for i in range(len(targets)))
        lines.append(f"  chain svc-{name} {{\n    numgen random mod {len(targets)} vmap {{ {vmap} }}\n  }}")
        for i, (address, port) in enumerate(targets):
            lines.append(f"  chain sep-{name}-{i} {{\n    meta l4proto {proto} dnat to {address}:{port}\n  }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def haproxy_config():
    servers = "\n".join(f"  server {n} {a}:{HTTP_PORT}" for n, a in BACKENDS.items())
    return f"""global
  maxconn 8000
  log stderr format short local0 err
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend http
  bind {VIP}:80
  default_backend http
backend http
  balance roundrobin
{servers}
frontend iperf
  bind {VIP}:{IPERF_PORT}
  default_backend iperf
backend iperf
  server b1 {BACKENDS['b1']}:{IPERF_PORT}
"""


def tollgate_config():
    def service(port, protocol, backend_port, names):
        return lab_kit.service(f"{VIP}:{port}/{protocol}", [f"{BACKENDS[n]}:{backend_port}" for n in names])
    return {"services": [service(80, "tcp", HTTP_PORT, BACKENDS), service(UDP_PORT, "udp", UDP_PORT, BACKENDS),
                         service(IPERF_PORT, "tcp", IPERF_PORT, ["b1"])]}


class Mode:
    """Sets the gateway up as one of MODES, and back."""

    def __init__(self, lab, name):
        self.lab, self.name = lab, name
        self.process = None
        self.agent = None

    def target(self, port):
        """Where clients send: the service address, or a backend for plain routing."""
        if self.name == "plain":
            return BACKENDS["b1"], (HTTP_PORT if port == 80 else port)
        return VIP, port

    def __enter__(self):
        if self.name == "nftables":
            run(ns("gw", "nft", "-f", "-"), input=nft_ruleset())
        elif self.name == "haproxy":
            run(ns("gw", "ip", "addr", "add", f"{VIP}/32", "dev", "lo"))
            config = STATE / "haproxy.cfg"
            config.write_text(haproxy_config())
            self.process = subprocess.Popen(ns("gw", "haproxy", "-f", config, "-db"), stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            lab_kit.wait_until(lambda: run(ns("gw", "ss", "-Hltn", "sport = :80")).stdout.strip(), 10, "haproxy")
        elif self.name == "tollgate":
            self.agent = lab_kit.Agent(self.lab, tollgate_config())
            self.agent.start()
        elif self.name == "redirect":
            self.process = subprocess.Popen(ns("gw", XDP_TOOL, "redirect", "--from", lab_kit.GW_CLIENT_LINK,
                                               "--to", lab_kit.GW_BACKEND_LINK, "--seconds", 120),
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if "attached" not in self.process.stdout.readline():
                raise RuntimeError("bare redirect did not attach")
        return self

    def __exit__(self, *_):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.name == "nftables":
            run(ns("gw", "nft", "delete", "table", "ip", "tgbench"), check=False)
        elif self.name == "haproxy":
            run(ns("gw", "ip", "addr", "del", f"{VIP}/32", "dev", "lo"), check=False)
        elif self.agent:
            self.agent.stop(detach=True)
        # TIME_WAIT sockets would meet the next mode's SYNs of the same
        # 4-tuple (a proxy's at the gateway, LAB-NOTES; the servers' and
        # the client's, whose ports come round again): none survive a mode.
        for node in ("gw", "c1", *BACKENDS):
            run(ns(node, "ss", "-K", "state", "time-wait"), check=False)


# --- the tests ------------------------------------------------------------------------

def counted_send(mode, count_node, count_interface, senders):
    """Starts the counter, then the senders (one per CPU, bounded), returns
    the counted rate."""
    counter = subprocess.Popen(ns(count_node, XDP_TOOL, "count", "--interface", count_interface, "--warmup", 0.7,
                                  "--seconds", SECONDS - 1.2), stdout=subprocess.PIPE, text=True)
    try:
        if "attached" not in counter.stdout.readline():
            raise RuntimeError(f"counter on {count_interface} did not attach")
        processes = [subprocess.Popen(["taskset", "-c", str(cpu)] + ns(node, XDP_TOOL, "send", "--interface", device,
                                                                        "--frame", frame, "--seconds", SECONDS,
                                                                        "--max-packets", 20_000_000),
                                      stdout=subprocess.PIPE, text=True)
                     for cpu, (node, device, frame) in enumerate(senders)]
        for process in processes:
            process.communicate(timeout=SECONDS + 30)
        out, _ = counter.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])["pps"]
    finally:
        if counter.poll() is None:
            counter.terminate()
            counter.wait()


def gateway_pps(mode):
    """Frames handed straight to the gateway's client-side veth (from its
    peer in the switch), counted and dropped at its backend-side peer."""
    address, port = mode.target(UDP_PORT)
    frame = udp_frame(CLIENT_MACS["c1"], CLIENT_ADDRESSES["c1"], address, port)
    sender = ("csw", lab_kit.GW_CLIENT_PORT, frame)
    return counted_send(mode, "bsw", lab_kit.GW_BACKEND_PORT, [sender, sender])


def backend_rx():
    total = 0
    for name in BACKENDS:
        stats = json.loads(run(["ip", "-n", lab_kit.namespace(name), "-s", "-j", "link", "show",
                                lab_kit.NODE_LINK]).stdout)
        total += stats[0]["stats64"]["rx"]["packets"]
    return total


def udp_pps(mode):
    """Both clients send (one per CPU); datagrams counted at the backends."""
    address, port = mode.target(UDP_PORT)
    processes = [subprocess.Popen(["taskset", "-c", str(cpu)] + ns(node, XDP_TOOL, "send", "--interface", lab_kit.NODE_LINK,
                                                                    "--frame", udp_frame(CLIENT_MACS[node],
                                                                                         CLIENT_ADDRESSES[node],
                                                                                         address, port),
                                                                    "--seconds", SECONDS, "--max-packets",
                                                                    20_000_000),
                                  stdout=subprocess.PIPE, text=True)
                 for cpu, node in enumerate(("c1", "c2"))]
    try:
        time.sleep(0.7)
        first, started = backend_rx(), time.monotonic()
        time.sleep(SECONDS - 1.2)
        last, ended = backend_rx(), time.monotonic()
        return (last - first) / (ended - started)
    finally:
        for process in processes:
            process.communicate(timeout=SECONDS + 30)


def wrk(mode, keep_alive):
    """Three wrk processes at once (one thread, 11 connections each), the
    same in every mode: to the service, or in plain routing one to each
    backend, so that every mode spreads the load over the three."""
    address, port = mode.target(80)
    targets = ([f"http://{a}:{HTTP_PORT}/" for a in BACKENDS.values()] if mode.name == "plain"
               else [f"http://{address}:{port}/"] * 3)
    processes = []
    for url in targets:
        command = ["wrk", "-t1", "-c11", f"-d{SECONDS}s", url]
        if not keep_alive:
            command[1:1] = ["-H", "Connection: close"]
        processes.append(subprocess.Popen(ns("c1", *command), stdout=subprocess.PIPE, text=True))
    rate = 0.0
    for process in processes:
        out, _ = process.communicate(timeout=SECONDS + 60)
        rate += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        errors = sum(map(int, re.findall(r"(?:connect|read|write|timeout) (\d+)", out)))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors += int(bad.group(1)) if bad else 0
        if errors > requests * 0.01:
            raise RuntimeError(f"wrk through {mode.name}: {errors} errors in {requests} requests:\n{out}")
    return rate


def iperf(mode):
    address, port = mode.target(IPERF_PORT)
    out = run(ns("c1", "iperf3", "-c", address, "-p", port, "-t", SECONDS, "-J"), timeout=SECONDS + 60).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def forwarding(rounds):
    results = {test: {mode: [] for mode in modes} for test, modes in TESTS.items()}
    lab = lab_kit.Lab()
    lab.up()
    servers = Servers()
    try:
        servers.start()
        for sysctl in ("net.ipv4.ip_local_port_range=1024 65000", "net.ipv4.tcp_tw_reuse=1"):
            run(ns("c1", "sysctl", "-qw", sysctl))
        run(ns("gw", "sysctl", "-qw", "net.ipv4.tcp_early_demux=0"))
        for round_number in range(rounds):
            for name in MODES:
                with Mode(lab, name) as mode:
                    line = []
                    for test, function in (("gateway_pps", gateway_pps), ("udp_pps", udp_pps),
                                           ("http_close_rps", lambda m: wrk(m, False)),
                                           ("http_keepalive_rps", lambda m: wrk(m, True)),
                                           ("tcp_bulk_gbps", iperf)):
                        if name in TESTS[test]:
                            value = function(mode)
                            results[test][name].append(value)
                            line.append(f"{test} {value:,.1f}")
                    log(f"  round {round_number + 1}/{rounds} {name}: " + ", ".join(line))
    finally:
        servers.stop()
        lab.down()
    return {test: {mode: summary(values) for mode, values in modes.items()} for test, modes in results.items()}


# --- tollgated's memory ---------------------------------------------------------------

def resident_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def agent_memory():
    """tollgated's resident memory, idle and with 10,000 services (tables
    of M = 251, one backend each), loaded by a config reload."""
    lab = lab_kit.Lab()
    lab.up()
    try:
        agent = lab_kit.Agent(lab, {"services": []})
        agent.start()
        try:
            time.sleep(1)  # let it settle (threads started, first health round)
            idle = resident_kib(agent.process.pid)
            services = [lab_kit.service(f"{lab_kit.scale_service_v4(i)}:80/tcp",
                                        [f"{BACKENDS['b1']}:{HTTP_PORT}"], maglev_size=251) for i in range(10000)]
            started = time.monotonic()
            agent.reconfigure({"services": services}, timeout=300)
            applied = time.monotonic() - started
            time.sleep(1)
            loaded = resident_kib(agent.process.pid)
        finally:
            agent.stop(detach=True)
    finally:
        lab.down()
    log(f"  tollgated RSS idle {idle / 1024:.1f} MiB, with 10,000 services {loaded / 1024:.1f} MiB "
        f"(applied in {applied:.1f} s)")
    return {"idle_kib": idle, "services": 10000, "with_services_kib": loaded, "apply_seconds": applied}


# --- the report ---------------------------------------------------------------------

def machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory / 1048576, 1),
            "kernel": platform.release(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def spread(figure, digits=1):
    return f"{figure['median']:,.{digits}f} ({figure['min']:,.{digits}f}–{figure['max']:,.{digits}f})"


def verdict(ok):
    return "met" if ok else "**missed**"


# (a scenario with a policy feature on, the same with it off)
FEATURE_SCENARIOS = [
    ("tcp_established_allow_list", "tcp_established"),
    ("tcp_established_rate_limit", "tcp_established"),
    ("tcp_new_flow_connection_limit", "tcp_new_flow"),
    ("tcp_new_flow_syn_auth", "tcp_new_flow"),
]

# (a scenario under a scheduler, the same under Maglev, each on a service of
# its own): a scheduler may add up to 20 ns to a new flow and nothing to an
# established one (5 ns: noise).
SCHEDULER_SCENARIOS = [
    (f"tcp_{kind}_{scheduler}", f"tcp_{kind}_maglev", limit)
    for scheduler in ("source_hash", "round_robin", "random", "least_connections",
                      "least_requests")
    for kind, limit in (("new_flow", 20), ("established", 5))
]


def report(results, command):
    out = []
    m = results["machine"]
    out.append("# tollgate benchmark results\n")
    out.append(f"- Command: `{command}`")
    out.append(f"- Date: {m['date']}")
    out.append(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}")
    out.append("- Each figure: median of the runs, (min–max). Comparisons are ratios of medians measured in the "
               "same run, modes interleaved round after round.\n")
    targets = []
    if "cost" in results:
        dp = results["cost"]
        out.append("## 1. Data-path cost per packet (BPF_PROG_TEST_RUN)\n")
        out.append(f"{dp['rounds']} rounds of {dp['iterations']:,} calls per scenario, `repeat=1` each: every counted "
                   "run sees the packet as built, its verdict and output frame are checked, and each round proves "
                   "its path (flows created, drops counted). Figure: the kernel's own duration per run. The floor "
                   "is a program that returns at once (`XDP_PASS`; `TC_ACT_OK` for the reply path), measured in "
                   "the same rounds.\n")
        out.append("| scenario | what runs | verdict | ns per packet | floor ns | ns above the floor |")
        out.append("|---|---|---|---|---|---|")
        for s in dp["cost"]:
            out.append(f"| {s['name']} | {s['what']} | {s['verdict']} | {spread(s['ns'])} | "
                       f"{spread(s['floor_ns'])} | {spread(s['above_floor_ns'])} |")
        by_name = {s["name"]: s["above_floor_ns"]["median"] for s in dp["cost"]}
        for name in ("tcp_established", "udp_established", "tcp6_established", "rate_limited_drop", "acl_deny"):
            targets.append((f"{name} ≤ 100 ns above the floor", f"{by_name[name]:.0f} ns", by_name[name] <= 100))
        targets.append(("a new connection, SYN and ACK (tcp_syn_and_ack) ≤ 450 ns above the floor",
                        f"{by_name['tcp_syn_and_ack']:.0f} ns (SYN {by_name['tcp_new_flow']:.0f}, "
                        f"ACK {by_name['tcp_handshake_ack']:.0f})", by_name["tcp_syn_and_ack"] <= 450))
        targets.append(("tc_reply ≤ tcp_established", f"{by_name['tc_reply']:.0f} ns vs "
                        f"{by_name['tcp_established']:.0f} ns", by_name["tc_reply"] <= by_name["tcp_established"]))
        out.append("")
        features = [(on, off) for on, off in FEATURE_SCENARIOS if on in by_name and off in by_name]
        if features:
            out.append("Each policy feature on (its packets pass) against the same scenario with it off, in the same "
                       "rounds: off, a feature costs a flag test in the service's policy, read anyway.\n")
            out.append("| feature on | off | ns above the floor, on | off | on − off |")
            out.append("|---|---|---|---|---|")
            for on, off in features:
                out.append(f"| {on} | {off} | {by_name[on]:.0f} | {by_name[off]:.0f} | "
                           f"{by_name[on] - by_name[off]:+.0f} |")
            out.append("")
        schedulers = [(on, off, limit) for on, off, limit in SCHEDULER_SCENARIOS if on in by_name and off in by_name]
        if schedulers:
            out.append("Each scheduler against Maglev, each on a service of its own, in the same rounds.\n")
            out.append("| scheduler's scenario | Maglev's | ns above the floor | Maglev's | difference |")
            out.append("|---|---|---|---|---|")
            for on, off, limit in schedulers:
                difference = by_name[on] - by_name[off]
                out.append(f"| {on} | {off} | {by_name[on]:.0f} | {by_name[off]:.0f} | {difference:+.0f} |")
                targets.append((f"{on} ≤ {off} + {limit} ns", f"{difference:+.0f} ns", difference <= limit))
            out.append("")
    if "baseline" in results:
        b = results["baseline"]
        out.append(f"### Before and after: {b['label']} against this build\n")
        out.append(f"Both builds' cost section, {b['runs']} runs each, alternating (the first of a pair swaps every "
                   "run). Figure: the median over the runs of each run's median ns above the floor.\n")
        out.append("| scenario | before | after | after / before |")
        out.append("|---|---|---|---|")
        for name in list(b["after"]) + [n for n in b["before"] if n not in b["after"]]:
            before, after = b["before"].get(name), b["after"].get(name)
            ratio = f"{after / before:.2f}x" if before and after else "—"
            out.append(f"| {name} | {f'{before:,.1f}' if before else '—'} | {f'{after:,.1f}' if after else '—'} | "
                       f"{ratio} |")
        out.append("")
    if "forwarding" in results:
        fw = results["forwarding"]
        out.append("## 2. Forwarding in the lab\n")
        out.append("Lab: `tools/lab` (2 clients, gateway, 3 backends, veths and bridges). Backends: nginx, 2 workers "
                   f"each on :{HTTP_PORT}, iperf3 in b1. Modes, one after the other in each round: "
                   + "; ".join(f"**{MODE_NAMES[m]}**" for m in MODES) + ". Plain routing sends to the backends directly. "
                   "nftables: DNAT through `address . protocol . port` verdict map → service chain → "
                   "`numgen random` verdict map → endpoint chain (kube-proxy's nftables layout). HAProxy: TCP "
                   f"mode, round robin. Bare redirect: XDP `bpf_redirect` {lab_kit.GW_CLIENT_LINK} → "
                   f"{lab_kit.GW_BACKEND_LINK}, nothing else.\n")
        out.append("- Gateway packet rate: 64-byte UDP frames (1,024 flows) handed to the gateway's client veth by "
                   "two packet-socket senders (one per CPU) in the switch, counted and dropped by XDP at the "
                   "gateway's backend-side peer.")
        out.append("- UDP end to end: the same frames from c1 and c2 (one per CPU), through the switch, gateway and "
                   "switch, counted at the backends' interfaces.")
        out.append(f"- HTTP: three `wrk -t1 -c11 -d{SECONDS}s` at once from c1 (in plain routing one to each "
                   "backend), with `Connection: close` for a new connection per request. Bulk: "
                   f"`iperf3 -t {SECONDS}`, one stream, to b1.\n")
        out.append("| test | " + " | ".join(MODE_NAMES[m] for m in MODES) +
                   " | tollgate / nftables | tollgate / HAProxy | tollgate / ceiling |")
        out.append("|---|" + "---|" * (len(MODES) + 3))
        for test, modes in fw.items():
            digits = 2 if test == "tcp_bulk_gbps" else 0
            cells = [spread(modes[m], digits) if m in modes else "—" for m in MODES]
            t = modes["tollgate"]["median"]
            ceiling = "redirect" if test == "gateway_pps" else "plain"
            ratio = lambda other: f"{t / modes[other]['median']:.2f}x" if other in modes else "—"  # noqa: E731
            out.append(f"| {TEST_NAMES[test]} | " + " | ".join(cells) +
                       f" | {ratio('nftables')} | {ratio('haproxy')} | {ratio(ceiling)} |")
        g = fw["gateway_pps"]
        targets.append(("gateway packet rate ≥ 1.3x nftables DNAT",
                        f"{g['tollgate']['median'] / g['nftables']['median']:.2f}x",
                        g["tollgate"]["median"] >= 1.3 * g["nftables"]["median"]))
        targets.append(("gateway packet rate ≥ 95% of the bare redirect",
                        f"{g['tollgate']['median'] / g['redirect']['median']:.0%}",
                        g["tollgate"]["median"] >= 0.95 * g["redirect"]["median"]))
        for test in ("http_close_rps", "http_keepalive_rps"):
            h = fw[test]
            targets.append((f"{TEST_NAMES[test]}: ≥ nftables and within 5% of plain routing",
                            f"{h['tollgate']['median'] / h['nftables']['median']:.2f}x nftables, "
                            f"{h['tollgate']['median'] / h['plain']['median']:.0%} of plain",
                            h["tollgate"]["median"] >= h["nftables"]["median"] and
                            h["tollgate"]["median"] >= 0.95 * h["plain"]["median"]))
        out.append("")
    if "scale" in results or "control" in results or "agent_memory" in results:
        out.append("## 3. Control plane and scale\n")
    if "control" in results:
        c = results["control"]
        out.append("| Maglev table build, M = 65,537 | ms |")
        out.append("|---|---|")
        for b in c["maglev_build"]:
            out.append(f"| {b['backends']:,} backends | {spread(b['ms'], 2)} |")
        a = c["api_change"]
        out.append("")
        out.append(f"Draining one backend of a service with {a['backends']:,} backends through the HTTP API "
                   f"(`PATCH .../backends/B {{\"state\": \"draining\"}}` on the agent's Unix socket; the agent's own "
                   f"server, controller and data path, in one process), {a['changes']} changes, each another "
                   "backend:\n")
        out.append("| figure | median (min–max) |")
        out.append("|---|---|")
        out.append(f"| API call until a SYN that went to that backend is steered elsewhere | "
                   f"{spread(a['call_to_datapath_ms'], 2)} ms |")
        out.append(f"| of which the HTTP reply | {spread(a['http_reply_ms'], 2)} ms |")
        out.append(f"| of which the agent (all but the table switch) | {spread(a['without_switch_ms'], 2)} ms |")
        out.append(f"| of which the table switch (one map-in-map update: an RCU grace period) | "
                   f"{spread(a['table_switch_ms'], 2)} ms |")
        out.append(f"| Maglev table entries written | {spread(a['table_entries_written'], 0)} |")
        out.append(f"| table slots one drain moves (the diff of the two tables) | "
                   f"{a['table_slots_one_drain_moves']:,} |")
        out.append(f"| backend entries written | {spread(a['backend_entries_written'], 0)} |")
        out.append(f"| services configured beside it | {a['other_services']:,} |")
        targets.append((f"one-backend change on a service of {a['backends']:,} backends beside "
                        f"{a['other_services']:,} others: under 5 ms plus at most one RCU wait",
                        f"{a['without_switch_ms']['median']:.1f} ms plus one switch of "
                        f"{a['table_switch_ms']['median']:.1f} ms",
                        a["without_switch_ms"]["median"] < 5))
        out.append("\nThe table is double-buffered: the standby copy, two changes behind, is brought to the new table "
                   "by writing only the slots that differ, then swapped in (a map-in-map update, which waits for an "
                   "RCU grace period).\n")
    if "walk" in results:
        out.append("A walk of the connection table (`tg_flows`, every entry read: what `conntrack list`, the "
                   "active-flow counts of a drain and the table metrics do), key by key "
                   "(`bpf_map_get_next_key` and a lookup each) and batched (`bpf_map_lookup_batch`, "
                   f"{results['walk'][0]['chunk']:,} entries a call), alternating in each round:\n")
        out.append("| flows | key by key ms | batched ms | batched is faster by |")
        out.append("|---|---|---|---|")
        for w in results["walk"]:
            out.append(f"| {w['flows']:,} | {spread(w['key_by_key_ms'], 1)} | {spread(w['batched_ms'], 1)} | "
                       f"{w['speedup']['median']:.1f}x |")
        out.append("")
    if "scale" in results:
        out.append("Per-packet cost (ns above the floor) against what the data path holds:\n")
        out.append("| holding | established flow | new flow (SYN) |")
        out.append("|---|---|---|")
        for p in results["scale"]:
            out.append(f"| {p['size']:,} {p['dimension']} | {spread(p['established']['above_floor_ns'])} | "
                       f"{spread(p['new_flow']['above_floor_ns'])} |")
        out.append("\n(10,000 services: the measured one with M = 65,537, the others M = 251. Flows: tg_flows "
                   "sized 2,097,152 for the 1,000 and 1,000,000 rows; both tables full: the default sizes, "
                   "tg_flows full and tg_overflow_flows refilled before each round, so the measured established "
                   "flow lives in the overflow and every new flow's insert there evicts one.)\n")
    if "memory" in results:
        mem = results["memory"]
        out.append(f"Kernel memory of the maps at the default sizes: **{mem['total_bytes'] / 1048576:.1f} MiB**, "
                   f"plus {mem['maglev_table']['bytes'] / 1024:.0f} KiB per service for its Maglev table "
                   f"(M = {mem['maglev_table']['max_entries']:,}).\n")
        out.append("| map | max entries | KiB |")
        out.append("|---|---|---|")
        for entry in sorted(mem["maps"], key=lambda e: -e["bytes"]):
            out.append(f"| {entry['map']} | {entry['max_entries']:,} | {entry['bytes'] / 1024:,.0f} |")
        out.append("")
    if "agent_memory" in results:
        am = results["agent_memory"]
        targets.append((f"{am['services']:,} services applied from a config file (a reload of tollgated) "
                        "under 5 s", f"{am['apply_seconds']:.1f} s", am["apply_seconds"] < 5))
        out.append(f"tollgated resident memory: **{am['idle_kib'] / 1024:.1f} MiB** idle, "
                   f"**{am['with_services_kib'] / 1024:.1f} MiB** with {am['services']:,} services "
                   f"(Maglev M = 251, one backend each; applied by a config reload in {am['apply_seconds']:.1f} s).\n")
    out.append("## Reading these figures\n")
    out.append("- The lab's nodes send with TX checksum offload off (an XDP redirect between veths needs full "
               "checksums, LAB-NOTES), which turns TSO off: bulk TCP runs at a few Gbit/s in every mode.")
    out.append("- End to end, a veth carries each packet through every hop on the sender's CPU. With XDP on a "
               "veth the kernel copies each frame that arrives as a socket buffer into an XDP buffer, and builds a "
               "socket buffer again behind the redirect; a NIC driver does neither. The gateway packet rate, "
               "counted at the gateway's egress, leaves the receivers out.")
    out.append("- Each service's Maglev table is an inner map: putting one in place waits for an RCU grace period "
               "(about 10 ms here), which is most of an API change's time; the tables of services applied together "
               "are switched in by one batched update, one wait for all.")
    out.append("- BPF_PROG_TEST_RUN with `repeat=1` enters the kernel for every packet, so the maps are not as warm "
               "in the caches as under a steady packet stream; the floor program pays the same entry.\n")
    if targets:
        out.append("## Targets\n")
        out.append("| target | measured | |")
        out.append("|---|---|---|")
        for name, value, ok in targets:
            out.append(f"| {name} | {value} | {verdict(ok)} |")
        out.append("")
    return "\n".join(out)


def baseline(binary, label, runs, rounds):
    """The cost section of `binary` and of this build, `runs` times each,
    alternating (which goes first swaps every run): per scenario, the median
    over the runs of each run's median ns above the floor."""
    log(f"per-packet cost against {label} ({runs} runs each, alternating):")
    figures = {"before": {}, "after": {}}
    for run in range(runs):
        order = [("before", binary), ("after", str(BUILD / "tollgate_bench_datapath"))]
        for side, path in order if run % 2 == 0 else reversed(order):
            completed = subprocess.run([path, "--rounds", str(rounds), "--only", "cost"], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True, timeout=600)
            if completed.returncode != 0:
                sys.exit(f"bench: {path} failed")
            for scenario in json.loads(completed.stdout)["cost"]:
                figures[side].setdefault(scenario["name"], []).append(scenario["above_floor_ns"]["median"])
    return {"label": label, "runs": runs,
            "before": {name: statistics.median(v) for name, v in figures["before"].items()},
            "after": {name: statistics.median(v) for name, v in figures["after"].items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="lab rounds (each mode once per round)")
    parser.add_argument("--datapath-rounds", type=int, default=7)
    parser.add_argument("--only", default="cost,forwarding,control",
                        help="comma-separated: cost, forwarding, control")
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--baseline", help="a tollgate_bench_datapath built from another commit: its per-packet "
                        "costs are measured beside this build's, runs alternating")
    parser.add_argument("--baseline-label", default="baseline", help="what the baseline is (a commit)")
    parser.add_argument("--baseline-runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (BPF programs, network namespaces)")
    only = set(args.only.split(","))
    if not only <= {"cost", "forwarding", "control"} or not 1 <= args.rounds <= 20:
        sys.exit("bench: --only takes cost, forwarding, control; --rounds 1-20")
    command = "bench/run" + ("" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:]))
    results = {"machine": machine()}
    started = time.monotonic()
    sections = [s for s in ("cost", "scale", "control", "memory", "walk")
                if s == "cost" and "cost" in only or s != "cost" and "control" in only]
    if sections:
        log("data path (build/tollgate_bench_datapath):")
        completed = subprocess.run([str(BUILD / "tollgate_bench_datapath"), "--rounds", str(args.datapath_rounds),
                                    "--only", ",".join(sections)], stdout=subprocess.PIPE, text=True, timeout=1800)
        if completed.returncode != 0:
            sys.exit("bench: tollgate_bench_datapath failed")
        data = json.loads(completed.stdout)
        if "cost" in data:
            results["cost"] = {"rounds": data["rounds"], "iterations": data["iterations"], "cost": data["cost"]}
        if "scale" in data:
            results["scale"] = data["scale"]
        if "api_change" in data:
            results["control"] = {"maglev_build": data["maglev_build"], "api_change": data["api_change"]}
        if "memory" in data:
            results["memory"] = data["memory"]
        if "walk" in data:
            results["walk"] = data["walk"]
    if args.baseline:
        results["baseline"] = baseline(args.baseline, args.baseline_label, args.baseline_runs, args.datapath_rounds)
    if "forwarding" in only:
        log(f"forwarding in the lab ({args.rounds} rounds, {len(MODES)} modes):")
        results["forwarding"] = forwarding(args.rounds)
    if "control" in only:
        log("tollgated memory:")
        results["agent_memory"] = agent_memory()
    text = report(results, command)
    text += f"\nWhole run: {time.monotonic() - started:.0f} s.\n"
    Path(args.output).write_text(text)
    print(text)
    log(f"written: {args.output}")


if __name__ == "__main__":
    main()
