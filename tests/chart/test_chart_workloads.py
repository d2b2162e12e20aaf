"""The Ray head, workers, sidecars and Services: commands, GPUs, scheduling, ports and security."""

from __future__ import annotations

from support.render import VALUE_SETS, all_containers, container, env_of, pod_spec, render, workloads

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def worker(values=None) -> dict:
    return render(values).get("Deployment", "worker")


def head(values=None) -> dict:
    return render(values).get("Deployment", "head")


# ---------------------------------------------------------------- GPUs and scheduling


def test_worker_requests_one_gpu_by_default():
    ray_worker = container(worker(), "ray-worker")
    assert ray_worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--num-gpus=1" in ray_worker["command"]


def test_worker_gpu_limit_and_ray_gpus_follow_worker_gpus():
    ray_worker = container(worker({"worker": {"gpus": 2}}), "ray-worker")
    assert ray_worker["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "--num-gpus=2" in ray_worker["command"]


def test_worker_gpu_limit_keeps_the_other_limits():
    limits = container(worker({"worker": {"gpus": 2}}), "ray-worker")["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 2}


def test_workers_without_gpus_have_no_gpu_limit():
    ray_worker = container(worker({"worker": {"gpus": 0}}), "ray-worker")
    assert "nvidia.com/gpu" not in ray_worker["resources"]["limits"]
    assert "--num-gpus=0" in ray_worker["command"]


def test_head_has_no_gpu_by_default_and_gets_one_from_head_gpus():
    assert "nvidia.com/gpu" not in container(head(), "ray-head")["resources"]["limits"]
    ray_head = container(head({"head": {"gpus": 1}}), "ray-head")
    assert ray_head["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--num-gpus=1" in ray_head["command"]


def test_workers_tolerate_the_nvidia_gpu_taint_by_default():
    assert pod_spec(worker())["tolerations"] == [GPU_TOLERATION]


def test_cpu_only_example_requests_no_gpu_and_tolerates_no_gpu_taint():
    rendered = render(VALUE_SETS["cpu-only"])
    for obj in workloads(rendered):
        assert "tolerations" not in pod_spec(obj)
        for c in all_containers(pod_spec(obj)):
            assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
    assert container(rendered.get("Deployment", "worker"), "ray-worker")["command"].count("--num-gpus=0") == 1


def test_gpu_examples_give_every_worker_a_gpu_limit():
    for name in ("gpu-single-node", "gpu-multi-node", "sweep"):
        ray_worker = container(render(VALUE_SETS[name]).get("Deployment", "worker"), "ray-worker")
        assert ray_worker["resources"]["limits"]["nvidia.com/gpu"] >= 1, name


def test_worker_scheduling_values_reach_the_worker_pods():
    spec = pod_spec(
        worker(
            {
                "worker": {
                    "nodeSelector": {"gpu": "a100"},
                    "runtimeClassName": "nvidia",
                    "affinity": {"nodeAffinity": {}},
                    "replicas": 3,
                }
            }
        )
    )
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["affinity"] == {"nodeAffinity": {}}
    assert worker({"worker": {"replicas": 3}})["spec"]["replicas"] == 3


def test_worker_pods_have_no_runtime_class_unless_set():
    assert "runtimeClassName" not in pod_spec(worker())


# ---------------------------------------------------------------- commands


def test_head_starts_ray_head_with_dashboard_on_all_interfaces_and_the_pod_ip():
    ray_head = container(head(), "ray-head")
    assert ray_head["command"] == [
        "ray", "start", "--head", "--block", "--node-ip-address=$(POD_IP)", "--port=6379",
        "--ray-client-server-port=10001", "--dashboard-host=0.0.0.0", "--dashboard-port=8265",
        "--dashboard-agent-listen-port=52365", "--num-gpus=0", "--disable-usage-stats",
    ]  # fmt: skip
    assert env_of(ray_head)["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_worker_joins_the_head_service_with_its_pod_ip():
    ray_worker = container(worker(), "ray-worker")
    assert ray_worker["command"] == [
        "ray", "start", "--address=ray-maddpg-head:6379", "--block", "--node-ip-address=$(POD_IP)",
        "--dashboard-agent-listen-port=52365", "--num-gpus=1", "--disable-usage-stats",
    ]  # fmt: skip
    assert env_of(ray_worker)["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_ray_start_params_become_extra_flags():
    assert (
        container(head({"head": {"rayStartParams": {"num-cpus": "0"}}}), "ray-head")["command"][-1]
        == "--num-cpus=0"
    )
    flags = container(worker({"worker": {"rayStartParams": {"num-cpus": 3, "memory": 1000}}}), "ray-worker")[
        "command"
    ]
    assert flags[-2:] == ["--memory=1000", "--num-cpus=3"]


def test_jupyter_serves_the_results_dir_on_all_interfaces():
    jupyter = container(head(), "jupyter")
    assert jupyter["command"] == [
        "jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--port-retries=0", "--no-browser",
        "--ServerApp.root_dir=/results",
    ]  # fmt: skip


def test_tensorboard_reads_the_results_dir_on_all_interfaces():
    assert container(head(), "tensorboard")["command"] == [
        "tensorboard", "--logdir=/results", "--host=0.0.0.0", "--port=6006",
    ]  # fmt: skip


def test_head_containers_share_the_results_volume():
    spec = pod_spec(head())
    for c in spec["containers"]:
        assert {"name": "results", "mountPath": "/results"}.items() <= next(
            m for m in c["volumeMounts"] if m["name"] == "results"
        ).items(), c["name"]
    assert spec["volumes"][0] == {
        "name": "results",
        "persistentVolumeClaim": {"claimName": "ray-maddpg-results"},
    }


def test_sidecars_can_be_turned_off():
    rendered = render({"jupyter": {"enabled": False}, "tensorboard": {"enabled": False}})
    assert [c["name"] for c in pod_spec(rendered.get("Deployment", "head"))["containers"]] == ["ray-head"]
    assert [s["metadata"]["name"] for s in rendered.of_kind("Service")] == ["ray-maddpg-head"]
    assert [s["metadata"]["name"] for s in rendered.of_kind("Secret")] == ["ray-maddpg-ray-auth"]


def test_ray_pods_have_memory_backed_shm_sized_from_values():
    for obj, size in (
        (head({"head": {"shmSize": "7Gi"}}), "7Gi"),
        (worker({"worker": {"shmSize": "9Gi"}}), "9Gi"),
    ):
        spec = pod_spec(obj)
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}} in spec["volumes"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in spec["containers"][0]["volumeMounts"]


def test_ray_containers_have_health_probes_on_public_health_endpoints():
    for obj, endpoint in ((head(), "/api/gcs_healthz"), (worker(), "/api/local_raylet_healthz")):
        ray = pod_spec(obj)["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert ray[probe]["httpGet"]["path"] == endpoint


def test_service_links_are_off_so_kubernetes_injects_no_ray_variables(rendered):
    for obj in workloads(rendered):
        assert pod_spec(obj)["enableServiceLinks"] is False


def test_extra_env_and_volumes_reach_the_ray_and_jupyter_containers():
    values = {
        "extraEnv": [{"name": "WANDB_MODE", "value": "offline"}],
        "extraVolumes": [{"name": "data", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    rendered = render(values)
    for obj, name in (
        (rendered.get("Deployment", "head"), "ray-head"),
        (rendered.get("Deployment", "head"), "jupyter"),
        (rendered.get("Deployment", "worker"), "ray-worker"),
    ):
        c = container(obj, name)
        assert env_of(c)["WANDB_MODE"]["value"] == "offline"
        assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
        assert {"name": "data", "emptyDir": {}} in pod_spec(obj)["volumes"]


def test_image_tag_defaults_to_the_chart_app_version_and_a_digest_wins():
    assert {c["image"] for c in all_containers(pod_spec(head()))} == {"ghcr.io/ray-maddpg/ray-maddpg:0.1.0"}
    digest = "sha256:" + "a" * 64
    assert (
        container(head({"image": {"digest": digest}}), "ray-head")["image"]
        == f"ghcr.io/ray-maddpg/ray-maddpg@{digest}"
    )


# ---------------------------------------------------------------- Services


def test_jupyter_and_tensorboard_are_node_port_services():
    rendered = render()
    assert rendered.get("Service", "jupyter")["spec"]["type"] == "NodePort"
    assert rendered.get("Service", "tensorboard")["spec"]["type"] == "NodePort"
    assert rendered.get("Service", "jupyter")["spec"]["ports"][0]["port"] == 8888
    assert rendered.get("Service", "tensorboard")["spec"]["ports"][0]["port"] == 6006


def test_node_ports_are_left_to_kubernetes_unless_fixed():
    rendered = render()
    assert "nodePort" not in rendered.get("Service", "jupyter")["spec"]["ports"][0]
    fixed = render(
        {"jupyter": {"service": {"nodePort": 30888}}, "tensorboard": {"service": {"nodePort": 30606}}}
    )
    assert fixed.get("Service", "jupyter")["spec"]["ports"][0]["nodePort"] == 30888
    assert fixed.get("Service", "tensorboard")["spec"]["ports"][0]["nodePort"] == 30606


def test_head_service_is_cluster_ip_with_gcs_dashboard_and_client_ports():
    service = render().get("Service", "head")
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("gcs", 6379),
        ("dashboard", 8265),
        ("client", 10001),
    ]


def test_no_node_port_exposes_the_dashboard_in_any_example(rendered):
    for service in rendered.of_kind("Service"):
        if service["spec"]["type"] != "ClusterIP":
            assert {p["port"] for p in service["spec"]["ports"]} <= {8888, 6006}


# ---------------------------------------------------------------- ports

OTHER_PORTS = {
    "head": {"ports": {"gcs": 7000, "dashboard": 9000, "client": 11000, "dashboardAgent": 53000}},
    "worker": {"ports": {"dashboardAgent": 54000}},
    "jupyter": {"containerPort": 9888},
    "tensorboard": {"containerPort": 7006},
}


def test_head_listens_on_the_ports_from_values_and_its_service_serves_them():
    rendered = render(OTHER_PORTS)
    ray_head = container(rendered.get("Deployment", "head"), "ray-head")
    for flag in ("--port=7000", "--dashboard-port=9000", "--ray-client-server-port=11000"):
        assert flag in ray_head["command"]
    assert "--dashboard-agent-listen-port=53000" in ray_head["command"]
    served = {(p["name"], p["containerPort"]) for p in ray_head["ports"]}
    assert served == {("gcs", 7000), ("dashboard", 9000), ("client", 11000)}
    service = rendered.get("Service", "head")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("gcs", 7000),
        ("dashboard", 9000),
        ("client", 11000),
    ]


def test_workers_and_clients_reach_the_head_on_its_ports_from_values():
    rendered = render(OTHER_PORTS)
    worker = rendered.get("Deployment", "worker")
    ray_worker = container(worker, "ray-worker")
    assert "--address=ray-maddpg-head:7000" in ray_worker["command"]
    assert "--dashboard-agent-listen-port=54000" in ray_worker["command"]
    assert ray_worker["ports"] == [{"name": "agent", "containerPort": 54000}]
    clients = [
        container(worker, "wait-for-head"),
        container(rendered.get("Job", "experiment"), "submit"),
        container(rendered.get("Job", "experiment"), "wait-for-cluster"),
        container(rendered.of_kind("Pod")[0], "check-cluster"),
    ]
    for client in clients:
        assert env_of(client)["RAY_API_SERVER_ADDRESS"]["value"] == "http://ray-maddpg-head:9000", client[
            "name"
        ]
    jupyter = container(rendered.get("Deployment", "head"), "jupyter")
    assert env_of(jupyter)["RAY_API_SERVER_ADDRESS"]["value"] == "http://127.0.0.1:9000"
    assert "port-forward svc/ray-maddpg-head 9000:9000" in rendered.texts["ray-maddpg/templates/NOTES.txt"]


def test_sidecars_listen_on_their_container_ports_which_the_network_policy_opens():
    rendered = render(OTHER_PORTS)
    head = rendered.get("Deployment", "head")
    assert "--port=9888" in container(head, "jupyter")["command"]
    assert "--port=7006" in container(head, "tensorboard")["command"]
    assert container(head, "jupyter")["ports"] == [{"name": "jupyter", "containerPort": 9888}]
    assert container(head, "tensorboard")["ports"] == [{"name": "tensorboard", "containerPort": 7006}]
    _, from_anywhere = rendered.of_kind("NetworkPolicy")[0]["spec"]["ingress"]
    assert from_anywhere == {"ports": [{"port": 9888, "protocol": "TCP"}, {"port": 7006, "protocol": "TCP"}]}


# ---------------------------------------------------------------- security


def test_every_pod_runs_as_uid_1000_non_root_with_runtime_default_seccomp(rendered):
    for obj in workloads(rendered):
        context = pod_spec(obj)["securityContext"]
        assert context["runAsUser"] == 1000 and context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_every_container_drops_all_capabilities_and_cannot_escalate(rendered):
    for obj in workloads(rendered):
        for c in all_containers(pod_spec(obj)):
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, c["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000, c["name"]


def test_every_container_has_a_read_only_root_with_writable_tmp_and_home(rendered):
    for obj in workloads(rendered):
        volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
        for c in all_containers(pod_spec(obj)):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert volumes[mounts["/tmp"]] == {"name": "tmp", "emptyDir": {}}
            assert volumes[mounts["/home/ray"]] == {"name": "home", "emptyDir": {}}


def test_no_pod_mounts_a_service_account_token(rendered):
    for obj in workloads(rendered):
        assert pod_spec(obj)["automountServiceAccountToken"] is False
    assert rendered.of_kind("ServiceAccount")[0]["automountServiceAccountToken"] is False


def test_every_container_sets_cpu_and_memory_requests_and_limits(rendered):
    for obj in workloads(rendered):
        for c in all_containers(pod_spec(obj)):
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)


def test_network_policy_opens_only_jupyter_and_tensorboard_to_other_pods():
    policy = render().of_kind("NetworkPolicy")[0]
    release = {"app.kubernetes.io/name": "ray-maddpg", "app.kubernetes.io/instance": "ray-maddpg"}
    assert policy["spec"]["podSelector"] == {"matchLabels": release}
    from_release, from_anywhere = policy["spec"]["ingress"]
    assert from_release == {"from": [{"podSelector": {"matchLabels": release}}]}
    assert from_anywhere == {"ports": [{"port": 8888, "protocol": "TCP"}, {"port": 6006, "protocol": "TCP"}]}


def test_network_policy_can_be_turned_off():
    assert render({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy") == []
