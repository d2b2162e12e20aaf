"""Pod networking: one network namespace per pod with its own IP, on a private bridge or joined by
a veth pair, and an ``/etc/hosts`` per pod that stands in for cluster DNS."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from pathlib import Path

from support.processes import signal_quietly

NETNS_ETC = Path("/etc/netns")
SUBNET_PREFIX = "10.254"


def ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def netns_available() -> bool:
    probe = f"rmprobe{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return ok


def create_bridge(bridge: str, lock: Path) -> str:
    """A bridge on the first free ``10.254.k.0/24`` (this machine's end is ``.1``); returns
    ``10.254.k``. ``lock`` serialises concurrent runs choosing their subnet."""
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        third = next(k for k in range(1, 255) if f" {SUBNET_PREFIX}.{k}.1/" not in used)
        subnet = f"{SUBNET_PREFIX}.{third}"
        ip("link", "add", "name", bridge, "type", "bridge")
        ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
    return subnet


def add_netns(netns: str, hosts: str, resolv: str | None = None) -> None:
    """A network namespace with its ``/etc/hosts`` (and ``resolv.conf``) under /etc/netns."""
    ip("netns", "add", netns)
    write_hosts(netns, hosts)
    if resolv is not None:
        (NETNS_ETC / netns / "resolv.conf").write_text(resolv)


def write_hosts(netns: str, hosts: str) -> None:
    """The namespace's ``/etc/hosts``, which ``ip netns exec`` binds over the machine's."""
    (NETNS_ETC / netns).mkdir(parents=True, exist_ok=True)
    (NETNS_ETC / netns / "hosts").write_text(hosts)


def bring_up(netns: str, address: str) -> None:
    """Give the namespace's eth0 ``address``/24 and bring it and loopback up."""
    ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")
    ip("-n", netns, "link", "set", "lo", "up")


def attach_to_bridge(netns: str, veth: str, bridge: str, address: str) -> None:
    """Join the namespace to the bridge through a veth pair (``eth0`` inside) at ``address``."""
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("link", "set", veth, "master", bridge, "up")
    bring_up(netns, address)


def join_pair(netns_a: str, address_a: str, netns_b: str, address_b: str) -> None:
    """Join two namespaces directly through a veth pair, ``eth0`` in each."""
    ip("link", "add", "eth0", "netns", netns_a, "type", "veth", "peer", "name", "eth0", "netns", netns_b)
    bring_up(netns_a, address_a)
    bring_up(netns_b, address_b)


def hosts_text(pod: str, pod_ip: str, services: list[tuple[str, str, str]]) -> str:
    """A pod's ``/etc/hosts``: its own names (``pod``, space separated) at ``pod_ip``, and the DNS
    names of each Service (address, name, namespace)."""
    lines = ["127.0.0.1 localhost", f"{pod_ip} {pod}"]
    for address, name, ns in services:
        lines.append(f"{address} {name} {name}.{ns} {name}.{ns}.svc {name}.{ns}.svc.cluster.local")
    return "\n".join(lines) + "\n"


def delete_netns(netns: str) -> None:
    """Kill whatever still runs in the namespace, delete it and its /etc/netns files."""
    for pid in subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split():
        signal_quietly(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", netns], capture_output=True, timeout=30)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def delete_run_network(prefix: str, bridge: str) -> None:
    """Delete every namespace whose name starts with ``prefix``, their /etc/netns dirs and the bridge."""
    for name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        if name.startswith(prefix):
            delete_netns(name)
    if NETNS_ETC.exists():
        for path in NETNS_ETC.glob(f"{prefix}*"):
            shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
