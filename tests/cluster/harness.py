"""Run the Helm chart's pods as real processes, the way a kubelet would.

The chart is rendered with the real Helm engine. Every pod of every Deployment and Job becomes
a set of processes that run the container's rendered command, args and env. Only what
Kubernetes itself provides is substituted:

- **Network**: one network namespace per pod, with its own IP on a private bridge, and an
  ``/etc/hosts`` that maps each Service's DNS names to the IP of the pod it selects
  ("netns" mode). Without ``ip netns`` the pods get loopback addresses 127.0.<k>.x
  ("loopback" mode). ``RM_CLUSTER_NETWORK=loopback`` forces the fallback.
- **Filesystem**: each container gets a private mount namespace whose root is a throwaway
  overlay of this machine's root, so containers share no ``/tmp`` or ``$HOME``. Volumes are
  bind-mounted at their rendered ``mountPath``: Secrets and ConfigMaps as files, emptyDirs as
  per-pod dirs, each PVC as one dir shared by every pod (as ReadWriteMany storage would be),
  and ``/dev/shm`` is left as the machine's.
- **Env**: ``env``/``envFrom`` with ``secretKeyRef``, ``configMapKeyRef``, the downward API,
  Kubernetes' ``$(VAR)`` expansion in env, command and args, and the Service link variables.
- **Restarts**: Deployment containers are restarted when they exit (restartPolicy Always).
  Job pods run once, and the caller reads their exit code.

The image's Python environment is this checkout's ``.venv``: its ``bin`` goes first on PATH.
Everything a run creates is named after its run id and removed by ``Cluster.stop()``; leftovers
of a crashed run (whose owning process is gone) are removed by the next run.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ray-maddpg"
VENV_BIN = REPO / ".venv" / "bin"
RUN_ROOT = Path("/tmp/rm-cluster")
NETNS_ETC = Path("/etc/netns")
# Every process a run starts carries this variable, so cleanup finds Ray's own children too.
MARKER = "RM_CLUSTER_RUN"
# The image's ENV and WORKDIR (image/Dockerfile), with this checkout's venv standing in for the
# image's /opt/venv.
IMAGE_ENV = {
    "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
IMAGE_HOME = "/home/ray"
SUBNET_PREFIX = "10.254"


def render(
    values_files: list[Path],
    overrides: dict | None = None,
    *,
    release: str = "rm",
    namespace: str = "default",
    revision: int = 1,
) -> list[dict]:
    """Render the chart like ``helm template -f FILE... --set ...`` and parse every object."""
    import helm_python

    values: dict = {}
    for path in values_files:
        deep_merge(values, yaml.safe_load(Path(path).read_text()) or {})
    deep_merge(values, copy.deepcopy(overrides or {}))
    rendered = helm_python.Chart.load(str(CHART)).render(
        values, name=release, namespace=namespace, revision=revision, is_upgrade=revision > 1
    )
    objects = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    return objects


def deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def is_hook(obj: dict) -> bool:
    return "helm.sh/hook" in (obj.get("metadata", {}).get("annotations") or {})


def find(objects: list[dict], kind: str, component: str | None = None) -> list[dict]:
    """Objects of ``kind`` (hooks excluded), optionally with app.kubernetes.io/component."""
    found = []
    for obj in objects:
        labels = obj.get("metadata", {}).get("labels") or {}
        if obj.get("kind") != kind or is_hook(obj):
            continue
        if component is None or labels.get("app.kubernetes.io/component") == component:
            found.append(obj)
    return found


# ---------------------------------------------------------------------------------------------
# Kubernetes semantics: env, $(VAR) expansion, downward API, Service links
# ---------------------------------------------------------------------------------------------

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as written."""

    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(sub, text)


def decoded_secret(secret: dict) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


def configmap_data(configmap: dict) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()})
    return data


def service_link_env(services: list[dict], address: Callable[[dict], str]) -> dict[str, str]:
    """The ``<SVC>_SERVICE_HOST``/``<SVC>_PORT...`` variables the kubelet injects into pods."""
    env: dict[str, str] = {}
    for svc in services:
        ports = svc["spec"].get("ports") or []
        if not ports or svc["spec"].get("clusterIP") == "None":
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        host = address(svc)
        first = ports[0]
        env[f"{name}_SERVICE_HOST"] = host
        env[f"{name}_SERVICE_PORT"] = str(first["port"])
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{host}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            prefix = f"{name}_PORT_{port['port']}_{proto}"
            env[prefix] = f"{proto.lower()}://{host}:{port['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(port["port"])
            env[f"{prefix}_ADDR"] = host
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
    return env


_CPU = {"m": 0.001}
_MEM = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def quantity(text: str | int | float) -> float:
    text = str(text)
    for suffix, scale in {**_MEM, **_CPU}.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


# ---------------------------------------------------------------------------------------------
# Pods and containers
# ---------------------------------------------------------------------------------------------


@dataclass
class Mount:
    path: str  # mountPath inside the container
    source: Path  # file or dir on this machine
    read_only: bool = False


@dataclass
class Container:
    pod: Pod
    spec: dict
    init: bool = False
    restarts: int = 0
    process: subprocess.Popen | None = None
    log: Path | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec["name"]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


@dataclass
class Pod:
    name: str
    owner: dict  # the Deployment or Job
    template: dict
    ip: str = ""
    netns: str | None = None
    dir: Path = Path()
    containers: list[Container] = field(default_factory=list)
    init_containers: list[Container] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.owner["kind"]

    @property
    def spec(self) -> dict:
        return self.template["spec"]

    @property
    def labels(self) -> dict:
        return self.template.get("metadata", {}).get("labels") or {}

    @property
    def component(self) -> str:
        return self.labels.get("app.kubernetes.io/component", "")

    def container(self, name: str) -> Container:
        for container in self.containers:
            if container.name == name:
                return container
        raise KeyError(f"pod {self.name} has no container {name!r}; has {[c.name for c in self.containers]}")

    def port(self, name_or_number: str | int) -> int:
        """Resolve a Service targetPort (number or container port name) on this pod."""
        if isinstance(name_or_number, int) or str(name_or_number).isdigit():
            return int(name_or_number)
        for container in self.spec["containers"]:
            for port in container.get("ports") or []:
                if port.get("name") == name_or_number:
                    return int(port["containerPort"])
        raise KeyError(f"pod {self.name} has no container port named {name_or_number!r}")


class Cluster:
    """The chart's workloads as processes; see the module docstring."""

    def __init__(self, objects: list[dict], *, namespace: str = "default", mode: str | None = None):
        self.objects = objects
        self.namespace = namespace
        self.mode = (
            mode or os.environ.get("RM_CLUSTER_NETWORK") or ("netns" if netns_available() else "loopback")
        )
        if self.mode not in ("netns", "loopback"):
            raise ValueError(f"RM_CLUSTER_NETWORK must be netns or loopback, not {self.mode!r}")
        self.run_id = f"{os.getpid() % 100000:05d}"
        self.dir = RUN_ROOT / self.run_id
        self.pvc_dirs: dict[str, Path] = {}
        self.pods: list[Pod] = []
        self.subnet = ""
        self.bridge = f"rm{self.run_id}br"
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.RLock()
        self._execs = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, *, first_component: str = "head", timeout: float = 300) -> Cluster:
        """Create the network and start every Deployment's pods (Jobs start with ``run_job``)."""
        cleanup_leftovers()
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        (RUN_ROOT / f"{self.run_id}.json").write_text(json.dumps({"pid": os.getpid(), "mode": self.mode}))
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
            teardown(self.run_id)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

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

    def service_pod(self, service: dict) -> Pod:
        selector = service["spec"].get("selector") or {}
        for pod in self.pods:
            if selector and all(pod.labels.get(k) == v for k, v in selector.items()):
                return pod
        raise LookupError(f"Service {service['metadata']['name']} selects no pod (selector {selector})")

    def endpoint(self, service: dict, port_name: str | None = None) -> tuple[str, int]:
        """(pod IP, target port) behind a Service port, as the Service would route it."""
        pod = self.service_pod(service)
        ports = service["spec"]["ports"]
        port = next(p for p in ports if port_name is None or p.get("name") == port_name)
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
            status, _ = http_get(
                f"http://{pod.ip}:{pod.port(probe['port'])}{probe.get('path', '/')}", timeout=5
            )
            if not 200 <= status < 400:
                return False
        return True

    @staticmethod
    def wait(condition: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def upgrade(self, objects: list[dict]) -> None:
        """``helm upgrade`` for what a new experiment changes: its ConfigMaps and Job.

        Secrets stay as they are, as the chart's ``lookup`` keeps them across upgrades.
        """
        changed = ("ConfigMap", "Job")
        self.objects = [o for o in self.objects if o.get("kind") not in changed] + [
            o for o in objects if o.get("kind") in changed
        ]

    def kill_pod(self, pod: Pod) -> None:
        """Delete a pod the hard way (its node vanished): SIGKILL every process in it."""
        for pid in self._pod_pids(pod):
            _signal(pid, signal.SIGKILL)

    # -- running things inside pods ----------------------------------------------------------

    def run_job(self, job: dict | None = None, *, timeout: float = 600) -> Container:
        """Run a Job's (or a bare Pod's) pod to completion; returns its main container."""
        container = self.start_job(job)
        try:
            container.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"{container.pod.name} still running after {timeout}s:\n{container.output()[-4000:]}"
            ) from None
        return container

    def start_job(self, job: dict | None = None) -> Container:
        """Start a Job's (or a bare Pod's) pod without waiting; runs its init containers first."""
        job = job or find(self.objects, "Job")[0]
        taken = {pod.name for pod in self.pods}
        name = next(
            f"{job['metadata']['name']}-{i}"
            for i in range(1000)
            if f"{job['metadata']['name']}-{i}" not in taken
        )
        pod = self._add_pod(job, name)
        self._start_pod(pod)
        return pod.containers[0]

    def exec(self, pod: Pod, argv: list[str], *, container: str | None = None, timeout: float = 120):
        """``kubectl exec``: run argv inside a running container (its network, filesystem and env)."""
        target = pod.container(container) if container else pod.containers[0]
        if not target.running():
            raise RuntimeError(f"{pod.name}/{target.name} is not running")
        # Until the launcher has chrooted, the process still sees this machine's root.
        self.wait(
            lambda: os.readlink(f"/proc/{target.process.pid}/root") != "/", 30, "the container to start", 0.2
        )
        self._execs += 1
        enter = ["nsenter", "--target", str(target.process.pid), "--mount", "--net", "--root", "--wd"]
        uid, gid = self._user(pod, target)
        if uid is not None:
            enter += ["--setuid", str(uid), "--setgid", str(gid)]
        return subprocess.run(
            [*enter, *argv],
            env={**target.env, MARKER: f"{self.run_id}/{pod.name}/exec{self._execs}"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def kill_process(self, pod: Pod, pattern: str, sig: int = signal.SIGKILL) -> list[int]:
        """Kill the pod's processes whose command line contains ``pattern`` (e.g. ``raylet``)."""
        killed = []
        for pid in self._pod_pids(pod):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if pattern in cmdline:
                os.kill(pid, sig)
                killed.append(pid)
        return killed

    def restart_container(self, pod: Pod, name: str) -> None:
        """Kill a container's processes; the supervisor restarts it, as the kubelet would."""
        container = pod.container(name)
        for pid in self._pod_pids(pod, container):
            _signal(pid, signal.SIGKILL)

    # -- internals ----------------------------------------------------------------------------

    def _create_network(self) -> None:
        if self.mode == "loopback":
            self.subnet = f"127.0.{100 + int(self.run_id) % 100}"
            return
        with open(RUN_ROOT / "subnet.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
            third = next(k for k in range(1, 255) if f" {SUBNET_PREFIX}.{k}.1/" not in used)
            self.subnet = f"{SUBNET_PREFIX}.{third}"
            _ip("link", "add", "name", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")

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
                veth = f"rm{self.run_id}v{len(self.pods)}"
                _ip("netns", "add", pod.netns)
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
                _ip("link", "set", veth, "master", self.bridge, "up")
                _ip("-n", pod.netns, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
                _ip("-n", pod.netns, "link", "set", "eth0", "up")
                _ip("-n", pod.netns, "link", "set", "lo", "up")
            return pod

    def _hosts_file(self, pod: Pod) -> Path:
        lines = ["127.0.0.1 localhost", f"{pod.ip} {pod.name}"]
        for svc in find(self.objects, "Service"):
            try:
                target = self.service_pod(svc)
            except LookupError:
                continue
            name = svc["metadata"]["name"]
            ns = svc["metadata"].get("namespace", self.namespace)
            lines.append(f"{target.ip} {name} {name}.{ns} {name}.{ns}.svc {name}.{ns}.svc.cluster.local")
        path = pod.dir / "hosts"
        path.write_text("\n".join(lines) + "\n")
        if pod.netns:
            (NETNS_ETC / pod.netns).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, NETNS_ETC / pod.netns / "hosts")
        return path

    def _object(self, kind: str, name: str) -> dict | None:
        for obj in self.objects:
            if obj.get("kind") == kind and obj["metadata"]["name"] == name:
                return obj
        return None

    def _volume_sources(self, pod: Pod) -> dict[str, Path]:
        """Materialise the pod's volumes under its dir (PVCs under the run dir, shared)."""
        sources: dict[str, Path] = {}
        uid = (pod.spec.get("securityContext") or {}).get("runAsUser")
        group = (pod.spec.get("securityContext") or {}).get("fsGroup")
        for volume in pod.spec.get("volumes") or []:
            name = volume["name"]
            target = pod.dir / "volumes" / name
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                target = self.pvc_dirs.setdefault(claim, self.dir / "pvc" / claim)
                target.mkdir(parents=True, exist_ok=True)
            elif "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
            elif "secret" in volume:
                secret = self._object("Secret", volume["secret"]["secretName"])
                _write_items(target, decoded_secret(secret) if secret else None, volume["secret"], name)
            elif "configMap" in volume:
                configmap = self._object("ConfigMap", volume["configMap"]["name"])
                _write_items(
                    target, configmap_data(configmap) if configmap else None, volume["configMap"], name
                )
            elif "downwardAPI" in volume:
                target.mkdir(parents=True, exist_ok=True)
                for item in volume["downwardAPI"]["items"]:
                    (target / item["path"]).write_text(self._field(pod, item["fieldRef"]["fieldPath"]))
            else:
                raise NotImplementedError(f"pod {pod.name}: volume {name} of an unsupported type: {volume}")
            if uid is not None or group is not None:
                _chown_tree(target, uid, group)
            sources[name] = target
        return sources

    def _field(self, pod: Pod, path: str) -> str:
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
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return (pod.template.get("metadata", {}).get(match.group(1)) or {}).get(match.group(2), "")
        if path not in values:
            raise NotImplementedError(f"downward API field {path} is not emulated")
        return values[path]

    def _env(self, pod: Pod, spec: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        if pod.spec.get("enableServiceLinks", True):
            env.update(service_link_env(find(self.objects, "Service"), lambda s: self._service_ip(s)))
        env["HOSTNAME"] = pod.name
        for source in spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                obj = self._object("ConfigMap", source["configMapRef"]["name"])
                data = configmap_data(obj) if obj else {}
            else:
                obj = self._object("Secret", source["secretRef"]["name"])
                data = decoded_secret(obj) if obj else {}
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for var in spec.get("env") or []:
            if "value" in var or "valueFrom" not in var:
                env[var["name"]] = expand(str(var.get("value", "")), env)
                continue
            ref = var["valueFrom"]
            if "fieldRef" in ref:
                env[var["name"]] = self._field(pod, ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind, key = (
                    ("Secret", "secretKeyRef") if "secretKeyRef" in ref else ("ConfigMap", "configMapKeyRef")
                )
                obj = self._object(kind, ref[key]["name"])
                data = (decoded_secret(obj) if kind == "Secret" else configmap_data(obj)) if obj else {}
                if ref[key]["key"] in data:
                    env[var["name"]] = data[ref[key]["key"]].decode()
                elif not ref[key].get("optional"):
                    raise LookupError(
                        f"pod {pod.name}: env {var['name']} needs {kind} {ref[key]} that the chart does not render"
                    )
            elif "resourceFieldRef" in ref:
                resource = ref["resourceFieldRef"]["resource"]
                kind, _, what = resource.partition(".")
                value = ((spec.get("resources") or {}).get(kind) or {}).get(what, 0)
                divisor = quantity(ref["resourceFieldRef"].get("divisor", "1"))
                env[var["name"]] = str(max(1, int(-(-quantity(value) // divisor)))) if value else "0"
            else:
                raise NotImplementedError(f"pod {pod.name}: env {var['name']} source {ref} not emulated")
        return env

    def _service_ip(self, service: dict) -> str:
        try:
            return self.service_pod(service).ip
        except LookupError:
            return "0.0.0.0"

    def _mounts(self, spec: dict, sources: dict[str, Path]) -> list[Mount]:
        mounts = []
        for mount in spec.get("volumeMounts") or []:
            if mount["mountPath"] == "/dev/shm":
                continue  # the machine's /dev/shm stands in for the Memory emptyDir
            source = sources[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append(Mount(mount["mountPath"], source, bool(mount.get("readOnly"))))
        return mounts

    def _start_pod(self, pod: Pod) -> None:
        self._hosts_file(pod)
        for other in self.pods:  # a new pod may be a Service's first endpoint
            if other is not pod and other.containers:
                self._hosts_file(other)
        sources = self._volume_sources(pod)
        pod.init_containers = [Container(pod, c, init=True) for c in pod.spec.get("initContainers") or []]
        pod.containers = [Container(pod, c) for c in pod.spec["containers"]]
        for container in pod.init_containers + pod.containers:
            container.env = {**IMAGE_ENV, "HOME": IMAGE_HOME, **self._env(pod, container.spec)}
            command = [expand(a, container.env) for a in container.spec.get("command") or []]
            args = [expand(a, container.env) for a in container.spec.get("args") or []]
            if not command:
                raise NotImplementedError(
                    f"{pod.name}/{container.name}: no command; the image entrypoint is not emulated"
                )
            container.argv = command + args
            container.spec["_mounts"] = self._mounts(container.spec, sources)
        for init in pod.init_containers:
            self._launch(pod, init)
            if init.process.wait(timeout=600) != 0:
                raise RuntimeError(f"init container {pod.name}/{init.name} failed:\n{init.output()[-4000:]}")
        for container in pod.containers:
            self._launch(pod, container)

    def _launch(self, pod: Pod, container: Container) -> None:
        launch_id = f"{container.name}-{container.restarts}"
        container.env[MARKER] = f"{self.run_id}/{pod.name}/{launch_id}"
        container.log = pod.dir / f"{launch_id}.log"
        log = open(container.log, "wb")
        container.process = subprocess.Popen(
            self._launcher(pod, container, container.argv, launch_id),
            env=container.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _launcher(self, pod: Pod, container: Container, argv: list[str], launch_id: str) -> list[str]:
        """argv that runs ``argv`` in the pod's netns, in a fresh container filesystem."""
        root = pod.dir / "rootfs" / launch_id
        scratch = pod.dir / "scratch" / launch_id
        for path in (root, scratch):
            path.mkdir(parents=True, exist_ok=True)
        security = self._security(pod, container)
        uid, gid = self._user(pod, container)
        tmp = pod.dir / "tmp" / launch_id
        tmp.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o1777)
        workdir = container.spec.get("workingDir") or container.env.get("HOME", IMAGE_HOME)
        q = shlex.quote
        lines = [
            "set -eu",
            f"R={q(str(root))}; S={q(str(scratch))}",
            'mount -t tmpfs tmpfs "$S"; mkdir "$S/upper" "$S/work"',
            'mount -t overlay overlay -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$R"',
            'for d in proc sys dev; do mount --rbind "/$d" "$R/$d"; done',
            f'mount --bind {q(str(pod.dir / "hosts"))} "$R/etc/hosts"',
            # This machine's Python lives under /root/.pyenv; the image's is world-readable.
            'chmod 755 "$R/root"',
            f'mkdir -p "$R"{q(IMAGE_HOME)} "$R"{q(workdir)}',
        ]
        mounted_over: list[str] = []  # where the container sees something other than this machine
        if not security.get("readOnlyRootFilesystem"):
            # The container's own /tmp, kept on this machine so that Ray's logs survive a crash.
            lines.append(f'mount --bind {q(str(tmp))} "$R/tmp"')
            mounted_over.append("/tmp")
        if uid is not None:
            lines.append(f'chown {uid}:{gid} "$R"{q(IMAGE_HOME)}')
        for mount in container.spec.get("_mounts", []):
            dest = f'"$R"{q(mount.path)}'
            make = (
                f"mkdir -p {dest}" if mount.source.is_dir() else f"mkdir -p $(dirname {dest}); touch {dest}"
            )
            lines.append(f"{make}; mount --bind {q(str(mount.source))} {dest}")
            mounted_over.append(mount.path)
            if mount.read_only:
                lines.append(f"mount -o remount,bind,ro {dest}")
        if any(REPO.is_relative_to(path) for path in mounted_over):
            # A checkout under /tmp or HOME would vanish under the pod's own volumes, and with it the
            # venv that stands in for the image: lay it back on top, writable but discarded as elsewhere.
            lines += [
                'mkdir "$S/repo-upper" "$S/repo-work"',
                f'mkdir -p "$R"{q(str(REPO))}',
                f'mount -t overlay overlay -o "lowerdir={REPO},upperdir=$S/repo-upper,workdir=$S/repo-work" '
                f'"$R"{q(str(REPO))}',
            ]
        if security.get("readOnlyRootFilesystem"):
            lines.append('mount -o remount,bind,ro "$R"')
        user = ["--userspec", f"{uid}:{gid}"] if uid is not None else []
        lines.append(
            f'exec chroot {" ".join(user)} "$R" /bin/sh -c \'cd "$0" && exec "$@"\' {q(workdir)} "$@"'
        )
        script = pod.dir / f"launch-{launch_id}.sh"
        script.write_text("\n".join(lines) + "\n")
        wrapper = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", str(script), *argv]
        if pod.netns:
            return ["ip", "netns", "exec", pod.netns, *wrapper]
        return wrapper

    @staticmethod
    def _security(pod: Pod, container: Container) -> dict:
        return {**(pod.spec.get("securityContext") or {}), **(container.spec.get("securityContext") or {})}

    def _user(self, pod: Pod, container: Container) -> tuple[int | None, int | None]:
        security = self._security(pod, container)
        uid = security.get("runAsUser")
        return (None, None) if uid is None else (int(uid), int(security.get("runAsGroup", uid)))

    def save_logs(self, dest: Path) -> None:
        """Copy every container's output, launch script and Ray session logs to ``dest``."""
        for pod in self.pods:
            target = dest / pod.name
            target.mkdir(parents=True, exist_ok=True)
            for path in [*pod.dir.glob("*.log"), *pod.dir.glob("*.sh"), pod.dir / "hosts"]:
                if path.exists():
                    shutil.copy(path, target / path.name)
            for logs in [
                *pod.dir.glob("tmp/*/ray/session_*/logs"),
                *pod.dir.glob("volumes/*/ray/session_*/logs"),
            ]:
                shutil.copytree(logs, target / "ray" / logs.parts[-2], dirs_exist_ok=True)

    def _supervise(self) -> None:
        """restartPolicy Always for Deployment pods: restart exited containers after a short backoff."""
        while not self._stopping.wait(1.0):
            with self._lock:
                for pod in self.pods:
                    if pod.kind != "Deployment":
                        continue
                    for container in pod.containers:
                        if (
                            container.process is not None
                            and not container.running()
                            and not self._stopping.is_set()
                        ):
                            # Wait for leftovers of the old container (Ray's children) before restarting it.
                            for pid in self._pod_pids(pod, container):
                                _signal(pid, signal.SIGKILL)
                            container.restarts += 1
                            print(
                                f"cluster harness: {pod.name}/{container.name} exited "
                                f"(rc {container.process.returncode}); restart #{container.restarts}",
                                flush=True,
                            )
                            self._launch(pod, container)

    def _pod_pids(self, pod: Pod, container: Container | None = None) -> list[int]:
        """Processes of one pod (or one container launch), found by their marker."""
        prefix = f"{self.run_id}/{pod.name}/"
        if container is not None:
            prefix += f"{container.name}-{container.restarts}"
        return _marked_pids(prefix)


# ---------------------------------------------------------------------------------------------
# Helpers: volumes, processes, network, cleanup
# ---------------------------------------------------------------------------------------------


def _write_items(target: Path, data: dict[str, bytes] | None, source: dict, volume: str) -> None:
    if data is None:
        if source.get("optional"):
            target.mkdir(parents=True, exist_ok=True)
            return
        raise LookupError(f"volume {volume} refers to {source} that the chart does not render")
    target.mkdir(parents=True, exist_ok=True)
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        path = target / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[item["key"]])
        path.chmod(item.get("mode", source.get("defaultMode", 0o644)))


def _chown_tree(path: Path, uid: int | None, gid: int | None) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, -1 if uid is None else uid, -1 if gid is None else gid)


def _ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _marked_pids(prefix: str) -> list[int]:
    """PIDs whose marker (``<run>/<pod>/<container>-<restarts>``) starts with ``prefix``."""
    needle = f"{MARKER}={prefix}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(var.startswith(needle) for var in (entry / "environ").read_bytes().split(b"\0")):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def netns_available() -> bool:
    probe = f"rmprobe{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return ok


def teardown(run_id: str) -> None:
    """Remove everything a run created: processes, namespaces, bridge, hosts files, dirs."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _marked_pids(f"{run_id}/"):
            _signal(pid, sig)
        deadline = time.monotonic() + 5
        while _marked_pids(f"{run_id}/") and time.monotonic() < deadline:
            time.sleep(0.2)
    prefix = f"rm{run_id}-"
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in names:
        if name.startswith(prefix):
            for pid in subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True
            ).stdout.split():
                _signal(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    if NETNS_ETC.exists():
        for path in NETNS_ETC.glob(f"{prefix}*"):
            shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["ip", "link", "delete", f"rm{run_id}br"], capture_output=True)
    shutil.rmtree(RUN_ROOT / run_id, ignore_errors=True)
    (RUN_ROOT / f"{run_id}.json").unlink(missing_ok=True)


def cleanup_leftovers() -> list[str]:
    """Tear down runs whose owning process is gone (a crashed or killed test session)."""
    removed = []
    for state in RUN_ROOT.glob("*.json") if RUN_ROOT.exists() else []:
        owner = json.loads(state.read_text()).get("pid")
        if owner and Path(f"/proc/{owner}").exists():
            continue
        teardown(state.stem)
        removed.append(state.stem)
    return removed


# ---------------------------------------------------------------------------------------------
# HTTP helpers for the checks
# ---------------------------------------------------------------------------------------------


def http_get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, ""
