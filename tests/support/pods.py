"""The harness's pods and containers: rendered specs plus what the harness derives and runs."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Mount:
    path: str  # mountPath inside the container
    source: Path  # file or dir on this machine
    read_only: bool = False


@dataclass
class Container:
    pod: Pod
    spec: dict  # as rendered; the harness keeps what it derives in the fields below
    init: bool = False
    restarts: int = 0
    process: subprocess.Popen | None = None
    log: Path | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def launch_id(self) -> str:
        """Names this launch (container and restart count): its log, script and process marker."""
        return f"{self.name}-{self.restarts}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def security(self) -> dict:
        """The effective securityContext: the pod's, overridden by the container's."""
        return {**(self.pod.spec.get("securityContext") or {}), **(self.spec.get("securityContext") or {})}

    def user(self) -> tuple[int | None, int | None]:
        """(uid, gid) the container runs as; (None, None) for the launching user."""
        security = self.security()
        uid = security.get("runAsUser")
        return (None, None) if uid is None else (int(uid), int(security.get("runAsGroup", uid)))


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
