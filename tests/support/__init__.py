"""Test support shared by the chart, image and cluster tests.

- ``render``: the chart rendered with the real Helm engine, and queries on the rendered objects.
- ``kube``: Kubernetes semantics: ``$(VAR)`` expansion, Secret/ConfigMap data, Service links,
  the downward API and a container's env.
- ``pods``: the harness's pod and container model.
- ``volumes``: a pod's volumes materialised as files and dirs, and its containers' mounts.
- ``network``: network namespaces, the pod bridge and the pods' ``/etc/hosts``.
- ``launcher``: the shell script that runs a container in its own filesystem and network.
- ``processes``: processes found by their marker variable, signalled and spawned.
- ``runs``: a cluster run's dirs, teardown and the leftovers of crashed runs.
- ``http``: HTTP GETs from this machine or from inside a network namespace.
- ``cluster``: the chart's pods run as real processes, the way a kubelet would.
"""
