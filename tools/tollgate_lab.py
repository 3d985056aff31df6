"""Drives the namespace lab (tools/lab) and a tollgated running in it.

Shared by the README's run command (tools/demo.py) and the e2e tests.
Every wait has a deadline; every process started here is stopped by its
own handle; Lab.down() removes everything the lab made.
"""

import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("TOLLGATE_BUILD", ROOT / "build"))
LAB = ROOT / "tools" / "lab"
TRAFFIC = ROOT / "tools" / "lab_traffic.py"
TOPOLOGY_FILE = ROOT / "tools" / "lab-topology"


def read_topology(path):
    """tools/lab-topology: {KEY: value}, every value a string (a list is
    comma-separated: split it where one is meant)."""
    topology = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z0-9_]+)=([^\s'\"$;]+)", line)
        if not match:
            raise ValueError(f"{path}:{number}: not KEY=value: {line!r}")
        topology[match[1]] = match[2]
    return topology


TOPOLOGY = read_topology(TOPOLOGY_FILE)


def topology_list(key):
    return TOPOLOGY[key].split(",")


def node_fact(node, fact):
    """LAB_<NODE>_<FACT> of a lab client or backend: V4, V6 or MAC."""
    return TOPOLOGY[f"LAB_{node.upper()}_{fact}"]


def namespace(node):
    """The network namespace of a lab node (gw, c1, ..., csw, bsw)."""
    return TOPOLOGY["LAB_NAMESPACE_PREFIX"] + node


# Addresses and names of the lab (tools/lab), from tools/lab-topology.
SERVICE_V4 = TOPOLOGY["SERVICE_V4"]
SERVICE_V6 = TOPOLOGY["SERVICE_V6"]
OTHER_SERVICES_V4 = topology_list("OTHER_SERVICES_V4")
CLIENTS_V4 = {n: node_fact(n, "V4") for n in topology_list("LAB_CLIENTS")}
CLIENT_MACS = {n: node_fact(n, "MAC") for n in topology_list("LAB_CLIENTS")}
BACKENDS_V4 = {n: node_fact(n, "V4") for n in topology_list("LAB_BACKENDS")}
BACKENDS_V6 = {n: node_fact(n, "V6") for n in topology_list("LAB_BACKENDS")}
SPOOFED_V4 = ipaddress.ip_network(TOPOLOGY["LAB_SPOOFED_V4"])
HTTP_PORT = int(TOPOLOGY["LAB_HTTP_PORT"])
UDP_PORT = int(TOPOLOGY["LAB_UDP_PORT"])
GATEWAY_NS = namespace(TOPOLOGY["LAB_GATEWAY"])
CLIENT_SWITCH_NS = namespace(TOPOLOGY["LAB_CLIENT_SWITCH"])
BACKEND_SWITCH_NS = namespace(TOPOLOGY["LAB_BACKEND_SWITCH"])
SWITCH_PORT_PREFIX = TOPOLOGY["LAB_PORT_PREFIX"]  # + node: the node's port on its switch
GW_CLIENT_LINK = TOPOLOGY["GW_CLIENT_LINK"]
GW_BACKEND_LINK = TOPOLOGY["GW_BACKEND_LINK"]
GW_CLIENT_PORT = TOPOLOGY["LAB_GW_CLIENT_PORT"]
GW_BACKEND_PORT = TOPOLOGY["LAB_GW_BACKEND_PORT"]
GW_CLIENT_MAC = TOPOLOGY["LAB_GW_CLIENT_MAC"]
NODE_LINK = TOPOLOGY["LAB_NODE_LINK"]
PIN_DIR = "/sys/fs/bpf/tollgate-lab"  # tools/lab down removes it
AGENT_DIR = Path("/run/tollgate-lab/agent")  # inside the lab's state dir


def bracket(address):
    return f"[{address}]" if ":" in address else address


def scale_service_v4(number):
    """The scale benchmarks' service `number` (0, 1, ...): 250 from each /24
    of SCALE_SERVICES_V4 in turn, hosts .1-.250."""
    network = ipaddress.ip_network(TOPOLOGY["SCALE_SERVICES_V4"])
    return str(network[256 * (number // 250) + 1 + number % 250])


def endpoint_address(endpoint):
    """The address of "address:port" or "[address]:port"."""
    return ipaddress.ip_address(endpoint.rsplit(":", 1)[0].strip("[]"))


def wait_until(condition, timeout, what, interval=0.05):
    """Polls condition() until it is true; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Lab:
    def up(self):
        subprocess.run([str(LAB), "up"], check=True, stdout=subprocess.DEVNULL)

    def down(self):
        subprocess.run([str(LAB), "down"], check=True, stdout=subprocess.DEVNULL)

    def command(self, node, args):
        return [str(LAB), "exec", node, *map(str, args)]

    def run(self, node, args, timeout=120, check=True):
        return subprocess.run(self.command(node, args), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def traffic(self, node, args, timeout=300):
        """Runs lab_traffic.py in `node`; returns its JSON report."""
        completed = self.run(node, ["python3", TRAFFIC, *args], timeout=timeout, check=False)
        try:
            return json.loads(completed.stdout)
        except json.JSONDecodeError as error:
            raise RuntimeError(f"lab_traffic.py {args} in {node} printed no JSON "
                               f"(exit {completed.returncode}): {completed.stderr.strip()}") from error

    def start_traffic(self, node, args):
        """Starts lab_traffic.py in `node` in the background."""
        return subprocess.Popen(self.command(node, ["python3", TRAFFIC, *args]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def service(address, backends, weights=None, maglev_size=None):
    """A config entry: `backends` are endpoint strings."""
    weights = weights or {}
    entry = {"address": address,
             "backends": [{"address": b, "weight": weights.get(b, 1)} for b in backends]}
    if maglev_size:
        entry["maglev_size"] = maglev_size
    return entry


def lab_services(names=tuple(BACKENDS_V4), weights=None):
    """HTTP and UDP echo services, IPv4 and IPv6, over the named backends.

    `weights` maps a backend name to its weight.
    """
    weights = weights or {}
    services = []
    for family_service, backends in ((SERVICE_V4, BACKENDS_V4), (SERVICE_V6, BACKENDS_V6)):
        for port, protocol, backend_port in ((80, "tcp", HTTP_PORT), (53, "udp", UDP_PORT)):
            endpoints = {f"{bracket(backends[n])}:{backend_port}": weights.get(n, 1) for n in names}
            services.append(service(f"{bracket(family_service)}:{port}/{protocol}", list(endpoints),
                                    endpoints))
    return {"services": services}


class Agent:
    """tollgated in the lab's gateway, driven by signals and the tollgate CLI.

    It runs in the gateway's network namespace only (nsenter --net), so that
    it pins its maps on the host's BPF filesystem (PIN_DIR) and a restarted
    agent finds them. Its state, socket, audit log and log live in
    AGENT_DIR, which `tools/lab down` removes with the pins.
    """

    def __init__(self, lab, config):
        self.lab = lab
        self.directory = AGENT_DIR
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)  # the socket must be reachable by other uids
        self.config_path = self.directory / "tollgate.json"
        self.log_path = self.directory / "tollgated.log"
        self.audit_path = self.directory / "audit.log"
        self.socket_path = self.directory / "tollgate.sock"
        self.process = None
        self._write_config(config)

    def _write_config(self, config):
        temporary = self.config_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(config, indent=2) if isinstance(config, dict) else config)
        temporary.rename(self.config_path)

    def _command(self, *extra):
        return ["nsenter", f"--net=/run/netns/{GATEWAY_NS}", str(BUILD / "tollgated"),
                "--interface", GW_CLIENT_LINK, "--backend-interface", GW_BACKEND_LINK,
                "--pin-dir", PIN_DIR, "--state-dir", str(self.directory / "state"),
                "--socket", str(self.socket_path), "--audit-log", str(self.audit_path), *extra]

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def audit(self):
        """The audit log, one dict per line."""
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]

    def start(self, timeout=30, extra=()):
        """Starts tollgated (with --config) and waits for its "ready"."""
        readies = self.log().count("tollgate info  ready")
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(self._command("--config", str(self.config_path), *extra),
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        # `tools/lab down` stops it by this record if we do not (--keep).
        Path("/run/tollgate-lab/tollgated.pid").write_text(f"{self.process.pid}\n")

        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"tollgated exited with {self.process.returncode}:\n{self.log()}")
            return self.log().count("tollgate info  ready") > readies

        wait_until(ready, timeout, "tollgated to be ready")

    def kill(self):
        """kill -9: the agent dies at once; the data path stays."""
        self.process.kill()
        self.process.wait()

    def cli(self, *args, uid=None, gid=None, check=True, timeout=30):
        """Runs the tollgate CLI against this agent (as `uid` if given, with
        `gid` or the group of the same number and no others)."""
        command = [str(BUILD / "tollgate"), "--socket", str(self.socket_path), *map(str, args)]
        if uid is not None:
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid if gid is None else gid}", "--clear-groups",
                       *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and completed.returncode != 0:
            raise RuntimeError(f"tollgate {' '.join(map(str, args))} exited {completed.returncode}: "
                               f"{completed.stderr.strip()}")
        return completed

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def reconfigure(self, config, timeout=10, expect_applied=True):
        """Writes the config, sends SIGHUP, waits until it is applied (or refused)."""
        applied = self.log().count("applied:")
        refused = self.log().count("not applied")
        self._write_config(config)
        self.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log().count("applied:") > applied or self.log().count("not applied") > refused,
                   timeout, "tollgated to read the configuration")
        was_applied = self.log().count("applied:") > applied
        if was_applied != expect_applied:
            raise RuntimeError(f"configuration {'refused' if expect_applied else 'applied'}:\n{self.log()}")

    def metrics(self):
        """GET /v1/metrics (Prometheus text) as {series: value}."""
        text = subprocess.run(["curl", "-sf", "--unix-socket", str(self.socket_path), "http://tollgate/v1/metrics"],
                              capture_output=True, text=True, check=True, timeout=30).stdout
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    def stats(self):
        return self.cli_json("stats")

    def stop(self, timeout=10, detach=True):
        """SIGTERM (the data path stays), then, unless told not to,
        `tollgated --detach`: programs and pins removed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        Path("/run/tollgate-lab/tollgated.pid").unlink(missing_ok=True)
        if detach:
            subprocess.run(self._command("--detach"), capture_output=True, timeout=30)


def backend_counters(stats, service_address):
    """{backend name: counters} for one service of a stats snapshot."""
    names = {**{f"{a}:{HTTP_PORT}": n for n, a in BACKENDS_V4.items()},
             **{f"[{a}]:{HTTP_PORT}": n for n, a in BACKENDS_V6.items()},
             **{f"{a}:{UDP_PORT}": n for n, a in BACKENDS_V4.items()},
             **{f"[{a}]:{UDP_PORT}": n for n, a in BACKENDS_V6.items()}}
    for entry in stats["services"]:
        if entry["address"] == service_address:
            return {names.get(b["address"], b["address"]): b["counters"] for b in entry["backends"]}
    raise KeyError(f"service {service_address} not in stats")
