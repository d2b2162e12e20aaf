"""The kubelet's part of the harness: a pod's network, hosts file, volumes, env and containers,
started as processes and restarted when they exit (restartPolicy Always)."""

from __future__ import annotations

import copy
import os
import signal
import threading
from pathlib import Path

from support import launcher, network, runs, volumes
from support.kube import container_env, downward_field, expand
from support.pods import Container, Pod
from support.processes import MARKER, marked_pids, signal_quietly, spawn
from support.render import find


class Kubelet:
    """Pods of the rendered ``objects`` as processes; ``Cluster`` adds the API the tests use."""

    def __init__(self, objects: list[dict], *, namespace: str = "default", mode: str | None = None):
        self.objects = objects
        self.namespace = namespace
        self.mode = (
            mode
            or os.environ.get("RM_CLUSTER_NETWORK")
            or ("netns" if network.netns_available() else "loopback")
        )
        if self.mode not in ("netns", "loopback"):
            raise ValueError(f"RM_CLUSTER_NETWORK must be netns or loopback, not {self.mode!r}")
        self.run_id = f"{os.getpid() % 100000:05d}"
        self.dir = runs.RUN_ROOT / self.run_id
        self.pvc_dirs: dict[str, Path] = {}
        self.pods: list[Pod] = []
        self.subnet = ""
        self.bridge = f"rm{self.run_id}br"
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.RLock()
        self._execs = 0

    def service_pod(self, service: dict) -> Pod:
        selector = service["spec"].get("selector") or {}
        for pod in self.pods:
            if selector and all(pod.labels.get(k) == v for k, v in selector.items()):
                return pod
        raise LookupError(f"Service {service['metadata']['name']} selects no pod (selector {selector})")

    # -- internals ----------------------------------------------------------------------------

    def _create_network(self) -> None:
        if self.mode == "loopback":
            self.subnet = f"127.0.{100 + int(self.run_id) % 100}"
        else:
            self.subnet = network.create_bridge(self.bridge, runs.RUN_ROOT / "subnet.lock")

    def _add_pod(self, owner: dict, name: str) -> Pod:
        with self._lock:
            template = owner["spec"]["template"] if "template" in owner["spec"] else owner
            pod = Pod(name=name, owner=owner, template=copy.deepcopy(template))
            pod.ip = f"{self.subnet}.{10 + len(self.pods)}"
            pod.dir = self.dir / "pods" / name
            pod.dir.mkdir(parents=True)
            self.pods.append(pod)
            if self.mode == "netns":
                pod.netns = f"rm{self.run_id}-{name}"[:60]
                network.ip("netns", "add", pod.netns)
                network.attach_to_bridge(pod.netns, f"rm{self.run_id}v{len(self.pods)}", self.bridge, pod.ip)
            return pod

    def _hosts_file(self, pod: Pod) -> None:
        services = []
        for svc in find(self.objects, "Service"):
            try:
                target = self.service_pod(svc)
            except LookupError:
                continue
            meta = svc["metadata"]
            services.append((target.ip, meta["name"], meta.get("namespace", self.namespace)))
        hosts = network.hosts_text(pod.name, pod.ip, services)
        (pod.dir / "hosts").write_text(hosts)
        if pod.netns:
            network.write_hosts(pod.netns, hosts)

    def _field(self, pod: Pod, path: str) -> str:
        """The downward API's view of the pod."""
        values = {
            "metadata.name": pod.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": f"{self.run_id}-{pod.name}",
            "status.podIP": pod.ip,
            "status.podIPs": pod.ip,
            "status.hostIP": f"{self.subnet}.1",
            "spec.nodeName": "harness-node",
            "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
        }
        return downward_field(pod.template, path, values)

    def _service_ip(self, service: dict) -> str:
        try:
            return self.service_pod(service).ip
        except LookupError:
            return "0.0.0.0"

    def _start_pod(self, pod: Pod) -> None:
        self._hosts_file(pod)
        for other in self.pods:  # a new pod may be a Service's first endpoint
            if other is not pod and other.containers:
                self._hosts_file(other)

        def field(path: str) -> str:
            return self._field(pod, path)

        sources = volumes.volume_sources(pod, self.objects, self.pvc_dirs, self.dir / "pvc", field)
        pod.init_containers = [Container(pod, c, init=True) for c in pod.spec.get("initContainers") or []]
        pod.containers = [Container(pod, c) for c in pod.spec["containers"]]
        for container in pod.init_containers + pod.containers:
            env = container_env(pod.name, pod.spec, container.spec, self.objects, field, self._service_ip)
            container.env = {**launcher.IMAGE_ENV, "HOME": launcher.IMAGE_HOME, **env}
            command = [expand(a, container.env) for a in container.spec.get("command") or []]
            args = [expand(a, container.env) for a in container.spec.get("args") or []]
            if not command:
                raise NotImplementedError(
                    f"{pod.name}/{container.name}: no command; the image entrypoint is not emulated"
                )
            container.argv = command + args
            container.mounts = volumes.mounts(container.spec, sources)
        for init in pod.init_containers:
            self._launch(init)
            if init.process.wait(timeout=600) != 0:
                raise RuntimeError(f"init container {pod.name}/{init.name} failed:\n{init.output()[-4000:]}")
        for container in pod.containers:
            self._launch(container)

    def _launch(self, container: Container) -> None:
        pod = container.pod
        container.env[MARKER] = f"{self.run_id}/{pod.name}/{container.launch_id}"
        container.log = pod.dir / f"{container.launch_id}.log"
        container.process = spawn(launcher.launch_argv(container), container.env, container.log)

    def _supervise(self) -> None:
        """restartPolicy Always for Deployment pods: restart exited containers after a short backoff."""
        while not self._stopping.wait(1.0):
            with self._lock:
                for pod in self.pods:
                    for container in pod.containers if pod.kind == "Deployment" else []:
                        if container.process is None or container.running() or self._stopping.is_set():
                            continue
                        # Kill leftovers of the old container (Ray's children) before restarting it.
                        for pid in self._pod_pids(pod, container):
                            signal_quietly(pid, signal.SIGKILL)
                        container.restarts += 1
                        print(
                            f"cluster harness: {pod.name}/{container.name} exited "
                            f"(rc {container.process.returncode}); restart #{container.restarts}",
                            flush=True,
                        )
                        self._launch(container)

    def _pod_pids(self, pod: Pod, container: Container | None = None) -> list[int]:
        """Processes of one pod (or one container launch), found by their marker."""
        prefix = f"{self.run_id}/{pod.name}/"
        return marked_pids(prefix + container.launch_id if container is not None else prefix)
