"""Run the Helm chart's pods as real processes, the way a kubelet would.

The chart is rendered with the real Helm engine. Every pod of every Deployment and Job becomes
a set of processes that run the container's rendered command, args and env. Only what
Kubernetes itself provides is substituted:

- **Network** (``network``): one network namespace per pod, with its own IP on a private bridge,
  and an ``/etc/hosts`` that maps each Service's DNS names to the IP of the pod it selects
  ("netns" mode). Without ``ip netns`` the pods get loopback addresses 127.0.<k>.x
  ("loopback" mode). ``RM_CLUSTER_NETWORK=loopback`` forces the fallback.
- **Filesystem** (``launcher``, ``volumes``): each container gets a private mount namespace whose
  root is a throwaway overlay of this machine's root, so containers share no ``/tmp`` or
  ``$HOME``. Volumes are bind-mounted at their rendered ``mountPath``: Secrets and ConfigMaps as
  files, emptyDirs as per-pod dirs, each PVC as one dir shared by every pod (as ReadWriteMany
  storage would be), and ``/dev/shm`` is left as the machine's.
- **Env** (``kube``): ``env``/``envFrom`` with ``secretKeyRef``, ``configMapKeyRef``, the downward
  API, Kubernetes' ``$(VAR)`` expansion in env, command and args, and the Service link variables.
- **Restarts**: Deployment containers are restarted when they exit (restartPolicy Always).
  Job pods run once, and the caller reads their exit code.

The image's Python environment is this checkout's ``.venv``: its ``bin`` goes first on PATH.
Everything a run creates is named after its run id and removed by ``Cluster.stop()``; leftovers
of a crashed run (whose owning process is gone) are removed by the next run (``runs``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from support import runs
from support.http import http_get
from support.kubelet import Kubelet
from support.pods import Container, Pod
from support.processes import MARKER, cmdline, signal_quietly, wait_for
from support.render import find


class Cluster(Kubelet):
    """The chart's workloads as processes; see the module docstring."""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, *, first_component: str = "head", timeout: float = 300) -> Cluster:
        """Create the network and start every Deployment's pods (Jobs start with ``run_job``)."""
        runs.cleanup_leftovers()
        runs.register(self.run_id, self.mode)
        print(f"cluster harness: network mode {self.mode}, run {self.run_id}, dir {self.dir}", flush=True)
        self._create_network()
        for deployment in find(self.objects, "Deployment"):
            for index in range(int(deployment["spec"].get("replicas", 1))):
                self._add_pod(deployment, f"{deployment['metadata']['name']}-{index}")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        # Kubernetes starts all pods at once and lets workers crash-loop until the head is up.
        # Starting them one at a time, each once the previous passes its readiness probes, spares
        # a small machine from booting three Ray nodes at once (Ray gives a node 30 s to register).
        for pod in sorted(self.pods, key=lambda p: p.component != first_component):
            self._start_pod(pod)
            try:
                self.wait(
                    lambda pod=pod: self.ready(pod),
                    timeout,
                    f"pod {pod.name} to pass its readiness probes",
                    2,
                )
            except TimeoutError as err:
                print(f"cluster harness: {err}; starting the next pod anyway", flush=True)
        return self

    def stop(self) -> None:
        """Kill every process, remove namespaces, bridge, hosts files and dirs. Safe to repeat."""
        self._stopping.set()
        with self._lock:
            runs.teardown(self.run_id)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def save_logs(self, dest: Path) -> None:
        """Copy every container's output, launch script and Ray session logs to ``dest``."""
        runs.save_logs(self.pods, dest)

    # -- queries ------------------------------------------------------------------------------

    def pods_of(self, component: str) -> list[Pod]:
        return [pod for pod in self.pods if pod.component == component]

    def service(self, component: str | None = None, name_contains: str = "") -> dict:
        services = [
            s for s in find(self.objects, "Service", component) if name_contains in s["metadata"]["name"]
        ]
        if len(services) != 1:
            raise LookupError(
                f"expected one Service for component={component!r} {name_contains!r}, got {services}"
            )
        return services[0]

    def endpoint(self, service: dict, port_name: str | None = None) -> tuple[str, int]:
        """(pod IP, target port) behind a Service port, as the Service would route it."""
        pod = self.service_pod(service)
        port = next(p for p in service["spec"]["ports"] if port_name is None or p.get("name") == port_name)
        return pod.ip, pod.port(port.get("targetPort", port["port"]))

    def url(self, service: dict, port_name: str | None = None, path: str = "/") -> str:
        ip, port = self.endpoint(service, port_name)
        return f"http://{ip}:{port}{path}"

    def ready(self, pod: Pod, container: str | None = None) -> bool:
        """Whether the pod's (or one container's) httpGet readiness probes answer 200-399."""
        for target in pod.containers:
            probe = (target.spec.get("readinessProbe") or {}).get("httpGet")
            if (container and target.name != container) or not probe:
                continue
            url = f"http://{pod.ip}:{pod.port(probe['port'])}{probe.get('path', '/')}"
            if not 200 <= http_get(url, timeout=5)[0] < 400:
                return False
        return True

    wait = staticmethod(wait_for)

    def upgrade(self, objects: list[dict]) -> None:
        """``helm upgrade`` for what a new experiment changes: its ConfigMaps and Job.

        Secrets stay as they are, as the chart's ``lookup`` keeps them across upgrades.
        """
        changed = ("ConfigMap", "Job")
        kept = [o for o in self.objects if o.get("kind") not in changed]
        self.objects = kept + [o for o in objects if o.get("kind") in changed]

    # -- running things inside pods ----------------------------------------------------------

    def run_job(self, job: dict | None = None, *, timeout: float = 600) -> Container:
        """Run a Job's (or a bare Pod's) pod to completion; returns its main container."""
        container = self.start_job(job)
        try:
            container.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            output = container.output()[-4000:]
            raise TimeoutError(f"{container.pod.name} still running after {timeout}s:\n{output}") from None
        return container

    def start_job(self, job: dict | None = None) -> Container:
        """Start a Job's (or a bare Pod's) pod without waiting; runs its init containers first."""
        job = job or find(self.objects, "Job")[0]
        taken = {pod.name for pod in self.pods}
        base = job["metadata"]["name"]
        name = next(f"{base}-{i}" for i in range(1000) if f"{base}-{i}" not in taken)
        pod = self._add_pod(job, name)
        self._start_pod(pod)
        return pod.containers[0]

    def exec(self, pod: Pod, argv: list[str], *, container: str | None = None, timeout: float = 120):
        """``kubectl exec``: run argv inside a running container (its network, filesystem and env)."""
        target = pod.container(container) if container else pod.containers[0]
        if not target.running():
            raise RuntimeError(f"{pod.name}/{target.name} is not running")
        # Until the launcher has chrooted, the process still sees this machine's root.
        root = f"/proc/{target.process.pid}/root"
        self.wait(lambda: os.readlink(root) != "/", 30, "the container to start", 0.2)
        self._execs += 1
        enter = ["nsenter", "--target", str(target.process.pid), "--mount", "--net", "--root", "--wd"]
        uid, gid = target.user()
        if uid is not None:
            enter += ["--setuid", str(uid), "--setgid", str(gid)]
        env = {**target.env, MARKER: f"{self.run_id}/{pod.name}/exec{self._execs}"}
        return subprocess.run([*enter, *argv], env=env, capture_output=True, text=True, timeout=timeout)

    def kill_pod(self, pod: Pod) -> None:
        """Delete a pod the hard way (its node vanished): SIGKILL every process in it."""
        for pid in self._pod_pids(pod):
            signal_quietly(pid, signal.SIGKILL)

    def kill_process(self, pod: Pod, pattern: str, sig: int = signal.SIGKILL) -> list[int]:
        """Kill the pod's processes whose command line contains ``pattern`` (e.g. ``raylet``)."""
        killed = []
        for pid in self._pod_pids(pod):
            if pattern in (cmdline(pid) or ""):
                os.kill(pid, sig)
                killed.append(pid)
        return killed

    def restart_container(self, pod: Pod, name: str) -> None:
        """Kill a container's processes; the supervisor restarts it, as the kubelet would."""
        for pid in self._pod_pids(pod, pod.container(name)):
            signal_quietly(pid, signal.SIGKILL)
