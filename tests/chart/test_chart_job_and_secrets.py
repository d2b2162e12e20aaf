"""The experiment Job, the helm test pod, the tokens, the results storage and NOTES.txt."""

from __future__ import annotations

import base64
import re

import yaml
from support.render import (
    CHART_DIR,
    VALUE_SETS,
    all_containers,
    chart,
    container,
    env_of,
    mounted_file,
    pod_spec,
    render,
    workloads,
)

# Processes that talk to Ray, and so need the token: the Ray nodes, the workers' wait,
# notebooks, the Job and the test.
RAY_CLIENTS = {
    "ray-head",
    "ray-worker",
    "wait-for-head",
    "jupyter",
    "wait-for-cluster",
    "submit",
    "check-cluster",
}


def job(values=None, revision=1) -> dict:
    return render(values, revision).get("Job", "experiment")


def mounted_secret(obj: dict, c: dict, path: str) -> tuple[str, str]:
    """(Secret name, key) of the Secret file at ``path`` in container ``c``."""
    volume, key = mounted_file(obj, c, path)
    assert "secret" in volume, f"{path} is not a mounted Secret file in {c['name']}"
    assert {"key": key, "path": key} in volume["secret"]["items"]
    return volume["secret"]["secretName"], key


# ---------------------------------------------------------------- the Job


def test_job_waits_for_the_cluster_in_an_init_container_then_submits_the_experiment():
    spec = pod_spec(job())
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-cluster"]
    assert spec["containers"][0]["command"] == [
        "ray-maddpg", "submit", "--address=$(RAY_API_SERVER_ADDRESS)", "--working-dir=/experiment", "--",
        "ray-maddpg", "train", "--config=experiment.yaml", "--results-dir=/results",
    ]  # fmt: skip
    assert env_of(spec["containers"][0])["RAY_API_SERVER_ADDRESS"]["value"] == "http://ray-maddpg-head:8265"


def test_job_result_is_the_training_result_without_retries():
    spec = job()["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_job_wait_expects_the_head_plus_every_worker_and_all_their_gpus():
    env = env_of(
        container(job({"worker": {"replicas": 3, "gpus": 2}, "head": {"gpus": 1}}), "wait-for-cluster")
    )
    assert env["RAY_EXPECTED_NODES"]["value"] == "4"
    assert env["RAY_EXPECTED_GPUS"]["value"] == "7"
    assert env["RAY_API_SERVER_ADDRESS"]["value"] == "http://ray-maddpg-head:8265"


def test_job_wait_is_bounded_by_the_configured_timeout():
    env = env_of(container(job({"experiment": {"waitTimeoutSeconds": 42}}), "wait-for-cluster"))
    assert env["RAY_WAIT_TIMEOUT_SECONDS"]["value"] == "42"


def test_job_submit_args_go_before_the_entrypoint_separator():
    command = container(job({"experiment": {"submitArgs": ["--entrypoint-num-cpus=1"]}}), "submit")["command"]
    assert command.index("--entrypoint-num-cpus=1") < command.index("--")


def test_job_limits_come_from_values_and_stay_unset_when_null():
    spec = job({"experiment": {"activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": None}})["spec"]
    assert spec["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in spec
    assert "activeDeadlineSeconds" not in job()["spec"]
    assert job()["spec"]["ttlSecondsAfterFinished"] == 604800


def test_each_upgrade_gets_its_own_job():
    assert job(revision=1)["metadata"]["name"] == "ray-maddpg-experiment-1"
    assert job(revision=2)["metadata"]["name"] == "ray-maddpg-experiment-2"


def test_inline_experiment_is_rendered_into_the_config_map_the_job_mounts(rendered, value_set):
    config_map = rendered.get("ConfigMap", "experiment")
    merged = chart().merge_values(VALUE_SETS[value_set])["experiment"]["config"]
    assert yaml.safe_load(config_map["data"]["experiment.yaml"]) == merged
    volume = next(
        v for v in pod_spec(rendered.get("Job", "experiment"))["volumes"] if v["name"] == "experiment"
    )
    assert volume["configMap"] == {
        "name": config_map["metadata"]["name"],
        "items": [{"key": "experiment.yaml", "path": "experiment.yaml"}],
    }


def test_example_experiments_take_nothing_from_the_default_experiment():
    # Helm merges maps key by key, so a default key missing from an example would leak into it.
    for name, values in VALUE_SETS.items():
        if name != "defaults":
            assert chart().merge_values(values)["experiment"]["config"] == values["experiment"]["config"], (
                name
            )


def test_a_default_stop_criterion_is_dropped_with_null_as_the_values_comment_says():
    # A run stops at the first criterion met, so a merged-in default env_steps would cut it short.
    rendered = render({"experiment": {"config": {"stop": {"env_steps": None, "time_total_s": 3600}}}})
    text = rendered.get("ConfigMap", "experiment")["data"]["experiment.yaml"]
    assert yaml.safe_load(text)["stop"] == {"time_total_s": 3600}


def experiment_config_maps(rendered) -> list[dict]:
    return [
        c
        for c in rendered.of_kind("ConfigMap")
        if c["metadata"]["labels"]["app.kubernetes.io/component"] == "experiment"
    ]


def test_job_reads_the_experiment_from_an_existing_config_map():
    rendered = render({"experiment": {"existingConfigMap": "my-exp", "existingConfigMapKey": "lr.yaml"}})
    assert experiment_config_maps(rendered) == []
    volume = next(
        v for v in pod_spec(rendered.get("Job", "experiment"))["volumes"] if v["name"] == "experiment"
    )
    assert volume["configMap"] == {"name": "my-exp", "items": [{"key": "lr.yaml", "path": "experiment.yaml"}]}


def test_experiment_can_be_turned_off():
    rendered = render({"experiment": {"enabled": False}})
    assert rendered.of_kind("Job") == [] and experiment_config_maps(rendered) == []


def test_every_example_experiment_passes_the_trainers_own_validation(rendered, value_set):
    from ray_maddpg.experiment.schema import validate_experiment

    text = rendered.get("ConfigMap", "experiment")["data"]["experiment.yaml"]
    validate_experiment(yaml.safe_load(text), default_name=value_set)


def test_sweep_example_is_a_tune_grid_over_the_learning_rates():
    algorithm = VALUE_SETS["sweep"]["experiment"]["config"]["algorithm"]
    assert set(algorithm) == {"actor_lr", "critic_lr"}
    assert all(len(space["grid_search"]) >= 2 for space in algorithm.values())


def test_workers_wait_for_the_head_node_before_joining():
    rendered = render({"head": {"gpus": 1}, "experiment": {"waitTimeoutSeconds": 42}})
    wait = container(rendered.get("Deployment", "worker"), "wait-for-head")
    assert wait["command"] == container(job(), "wait-for-cluster")["command"]
    env = env_of(wait)
    assert (env["RAY_EXPECTED_NODES"]["value"], env["RAY_EXPECTED_GPUS"]["value"]) == ("1", "1")
    assert env["RAY_API_SERVER_ADDRESS"]["value"] == "http://ray-maddpg-head:8265"


def test_helm_test_pod_checks_the_expected_nodes_and_gpus():
    pod = render({"worker": {"replicas": 2}}).of_kind("Pod")[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    check = container(pod, "check-cluster")
    assert check["command"] == container(job(), "wait-for-cluster")["command"]
    env = env_of(check)
    assert (env["RAY_EXPECTED_NODES"]["value"], env["RAY_EXPECTED_GPUS"]["value"]) == ("3", "2")
    assert env["RAY_WAIT_TIMEOUT_SECONDS"]["value"] == "120"


# ---------------------------------------------------------------- tokens


def test_ray_auth_token_reaches_every_ray_process_as_a_file_from_the_secret(rendered):
    secret = rendered.get("Secret", "ray-auth")
    seen = set()
    for obj in workloads(rendered):
        for c in all_containers(pod_spec(obj)):
            if c["name"] not in RAY_CLIENTS:
                continue
            env = env_of(c)
            assert env["RAY_AUTH_MODE"]["value"] == "token", c["name"]
            name, key = mounted_secret(obj, c, env["RAY_AUTH_TOKEN_PATH"]["value"])
            assert (name, key) == (secret["metadata"]["name"], "token")
            seen.add(c["name"])
    assert seen == RAY_CLIENTS


def test_jupyter_token_comes_from_its_secret_as_a_file():
    rendered = render()
    head = rendered.get("Deployment", "head")
    jupyter = container(head, "jupyter")
    name, key = mounted_secret(head, jupyter, env_of(jupyter)["JUPYTER_TOKEN_FILE"]["value"])
    assert (name, key) == (rendered.get("Secret", "jupyter")["metadata"]["name"], "token")


def test_no_secret_value_appears_anywhere_outside_its_secret(rendered):
    secrets = {base64.b64decode(v).decode() for s in rendered.of_kind("Secret") for v in s["data"].values()}
    assert secrets and all(len(s) >= 32 for s in secrets)
    for path, text in rendered.texts.items():
        if not path.endswith("-secret.yaml"):
            for secret in secrets:
                assert secret not in text, path


def test_no_env_var_holds_a_plain_credential_value(rendered):
    for obj in workloads(rendered):
        for c in all_containers(pod_spec(obj)):
            for item in c.get("env", []):
                if re.search(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY", item["name"]) and not item["name"].endswith(
                    "_PATH"
                ):
                    assert item["name"].endswith("_FILE") or "valueFrom" in item, (c["name"], item["name"])


def test_generated_tokens_are_long_random_strings_new_on_each_install():
    def token(template):
        text = chart().render({}, name="a", namespace="ml")[f"ray-maddpg/templates/{template}"]
        return base64.b64decode(yaml.safe_load(text)["data"]["token"]).decode()

    for template in ("ray-auth-secret.yaml", "jupyter/jupyter-secret.yaml"):
        first, second = token(template), token(template)
        assert re.fullmatch(r"[A-Za-z0-9]{64}", first)
        assert first != second


def test_generated_secrets_reuse_the_value_already_in_the_cluster():
    # Offline rendering has no cluster for `lookup`, so check the helper both Secrets use.
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    kept = helpers[helpers.index('define "ray-maddpg.keptSecretValue"') :]
    kept = kept[: kept.index("{{- end }}\n{{- end }}")]
    assert 'lookup "v1" "Secret" .root.Release.Namespace .name' in kept
    assert "index $existing.data .key" in kept
    token_secret = helpers[helpers.index('define "ray-maddpg.tokenSecret"') :]
    assert 'include "ray-maddpg.keptSecretValue" .' in token_secret[: token_secret.index("{{- end }}")]
    for template in ("ray-auth-secret.yaml", "jupyter/jupyter-secret.yaml"):
        assert 'include "ray-maddpg.tokenSecret"' in (CHART_DIR / "templates" / template).read_text()


def test_existing_secrets_are_used_and_none_is_generated():
    rendered = render({"rayAuth": {"existingSecret": "ray-token"}, "jupyter": {"existingSecret": "nb-token"}})
    assert rendered.of_kind("Secret") == []
    head = rendered.get("Deployment", "head")
    ray_head, jupyter = container(head, "ray-head"), container(head, "jupyter")
    assert mounted_secret(head, ray_head, env_of(ray_head)["RAY_AUTH_TOKEN_PATH"]["value"])[0] == "ray-token"
    assert mounted_secret(head, jupyter, env_of(jupyter)["JUPYTER_TOKEN_FILE"]["value"])[0] == "nb-token"


def test_turning_ray_auth_off_disables_it_in_every_ray_process():
    rendered = render({"rayAuth": {"enabled": False}})
    assert [s["metadata"]["name"] for s in rendered.of_kind("Secret")] == ["ray-maddpg-jupyter"]
    for obj in workloads(rendered):
        for c in all_containers(pod_spec(obj)):
            if c["name"] in RAY_CLIENTS:
                assert env_of(c)["RAY_AUTH_MODE"]["value"] == "disabled"
                assert "RAY_AUTH_TOKEN_PATH" not in env_of(c)


# ---------------------------------------------------------------- storage


def test_results_pvc_is_created_with_size_class_and_access_modes():
    pvc = render(
        {"storage": {"pvc": {"size": "5Gi", "storageClass": "nfs", "accessModes": ["ReadWriteMany"]}}}
    ).get("PersistentVolumeClaim", "results")
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "nfs",
        "resources": {"requests": {"storage": "5Gi"}},
    }
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_storage_class_dash_means_no_class_and_empty_means_the_default():
    assert (
        render({"storage": {"pvc": {"storageClass": "-"}}}).of_kind("PersistentVolumeClaim")[0]["spec"][
            "storageClassName"
        ]
        == ""
    )
    assert "storageClassName" not in render().of_kind("PersistentVolumeClaim")[0]["spec"]


def test_existing_claim_is_mounted_by_every_ray_pod_and_no_pvc_is_created():
    rendered = render({"storage": {"pvc": {"create": False, "existingClaim": "shared"}}})
    assert rendered.of_kind("PersistentVolumeClaim") == []
    for component in ("head", "worker"):
        volumes = pod_spec(rendered.get("Deployment", component))["volumes"]
        assert {"name": "results", "persistentVolumeClaim": {"claimName": "shared"}} in volumes


def test_multi_node_example_shares_results_over_read_write_many_storage():
    pvc = render(VALUE_SETS["gpu-multi-node"]).get("PersistentVolumeClaim", "results")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_s3_storage_passes_the_uri_and_credentials_from_a_secret():
    s3 = {
        "uri": "s3://bucket/runs",
        "endpointUrl": "http://minio:9000",
        "region": "eu-1",
        "credentialsSecret": "s3",
    }
    rendered = render({"storage": {"type": "s3", "s3": s3}})
    assert rendered.of_kind("PersistentVolumeClaim") == []
    assert (
        container(rendered.get("Job", "experiment"), "submit")["command"][-1]
        == "--results-dir=s3://bucket/runs"
    )
    assert (
        container(rendered.get("Deployment", "head"), "tensorboard")["command"][1]
        == "--logdir=s3://bucket/runs"
    )
    for component, name in (("head", "ray-head"), ("worker", "ray-worker"), ("head", "tensorboard")):
        env = env_of(container(rendered.get("Deployment", component), name))
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}
        }
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"
        assert env["AWS_REGION"]["value"] == "eu-1"


# ---------------------------------------------------------------- NOTES.txt


def test_notes_say_how_to_reach_jupyter_and_tensorboard_and_follow_the_job():
    notes = render().texts["ray-maddpg/templates/NOTES.txt"]
    assert "get svc ray-maddpg-jupyter -o jsonpath='{.spec.ports[0].nodePort}'" in notes
    assert "get svc ray-maddpg-tensorboard" in notes
    assert "get secret ray-maddpg-jupyter -o jsonpath='{.data.token}' | base64 -d" in notes
    assert "logs -f job/ray-maddpg-experiment-1 -c submit" in notes
    assert "port-forward svc/ray-maddpg-head 8265:8265" in notes
