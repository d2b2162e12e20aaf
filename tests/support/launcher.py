"""The launcher: argv that runs a container's command the way a container runtime would, in the
pod's network namespace and in a fresh filesystem of its own (a throwaway overlay of this machine's
root, with the container's volumes bind-mounted at their mountPath)."""

from __future__ import annotations

import shlex

from support.pods import Container
from support.render import ROOT

VENV_BIN = ROOT / ".venv" / "bin"
# The image's ENV and WORKDIR (image/Dockerfile), with this checkout's venv standing in for the
# image's /opt/venv.
IMAGE_ENV = {
    "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
IMAGE_HOME = "/home/ray"


def launch_argv(container: Container) -> list[str]:
    """argv that runs ``container.argv`` in the pod's netns, in a fresh container filesystem.

    Writes the launch script ``launch-<launch id>.sh`` to the pod's dir."""
    pod, launch_id = container.pod, container.launch_id
    root = pod.dir / "rootfs" / launch_id
    scratch = pod.dir / "scratch" / launch_id
    for path in (root, scratch):
        path.mkdir(parents=True, exist_ok=True)
    security = container.security()
    uid, gid = container.user()
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
    for mount in container.mounts:
        dest = f'"$R"{q(mount.path)}'
        make = f"mkdir -p {dest}" if mount.source.is_dir() else f"mkdir -p $(dirname {dest}); touch {dest}"
        lines.append(f"{make}; mount --bind {q(str(mount.source))} {dest}")
        mounted_over.append(mount.path)
        if mount.read_only:
            lines.append(f"mount -o remount,bind,ro {dest}")
    if any(ROOT.is_relative_to(path) for path in mounted_over):
        # A checkout under /tmp or HOME would vanish under the pod's own volumes, and with it the
        # venv that stands in for the image: lay it back on top, writable but discarded as elsewhere.
        lines += [
            'mkdir "$S/repo-upper" "$S/repo-work"',
            f'mkdir -p "$R"{q(str(ROOT))}',
            f'mount -t overlay overlay -o "lowerdir={ROOT},upperdir=$S/repo-upper,workdir=$S/repo-work" '
            f'"$R"{q(str(ROOT))}',
        ]
    if security.get("readOnlyRootFilesystem"):
        lines.append('mount -o remount,bind,ro "$R"')
    user = ["--userspec", f"{uid}:{gid}"] if uid is not None else []
    lines.append(f'exec chroot {" ".join(user)} "$R" /bin/sh -c \'cd "$0" && exec "$@"\' {q(workdir)} "$@"')
    script = pod.dir / f"launch-{launch_id}.sh"
    script.write_text("\n".join(lines) + "\n")
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        str(script),
        *container.argv,
    ]
    if pod.netns:
        return ["ip", "netns", "exec", pod.netns, *wrapper]
    return wrapper
