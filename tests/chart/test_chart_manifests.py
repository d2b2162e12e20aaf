"""Every values set renders objects that Kubernetes accepts, with consistent names, labels and selectors."""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions
from support.render import labels, pod_labels, pod_spec, render

# The newest Kubernetes minor that kubernetes-validate bundles, and the two before it.
MINORS = sorted({tuple(int(part) for part in v.split(".")[:2]) for v in all_versions()})[-3:]
KUBE_VERSIONS = [f"{major}.{minor}.0" for major, minor in MINORS]

STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}
SELECTOR_LABELS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_validates_strictly_against_kubernetes_schemas(rendered, kube_version):
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, kube_version, strict=True)


def test_every_values_set_renders_the_full_set_of_resources(rendered):
    kinds = sorted(obj["kind"] for obj in rendered.objects)
    assert kinds == sorted(
        ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Job", "NetworkPolicy", "PersistentVolumeClaim",
         "PodDisruptionBudget", "Pod", "Secret", "Secret", "Service", "Service", "Service", "ServiceAccount"]
    )  # fmt: skip


def test_each_template_file_renders_one_resource_kind_named_for_it(defaults):
    for obj in defaults.objects:
        template = defaults.template(obj).rsplit("/", 1)[-1].removesuffix(".yaml")
        kind = {"PersistentVolumeClaim": "pvc", "PodDisruptionBudget": "pdb", "Pod": "pod"}.get(
            obj["kind"], obj["kind"].lower()
        )
        assert template.endswith(kind), f"{obj['kind']} rendered from {template}.yaml"
    assert len(set(defaults.templates)) == len(defaults.objects)


def test_templates_in_a_component_folder_render_that_components_objects_and_carry_its_name(defaults):
    folders = {"head", "worker", "jupyter", "tensorboard", "experiment"}
    seen = set()
    for obj in defaults.objects:
        path = defaults.template(obj)
        folder, file = path.removeprefix("ray-maddpg/templates/").rpartition("/")[::2]
        if folder in folders:
            assert labels(obj)["app.kubernetes.io/component"] == folder, path
            assert file.startswith(folder + "-"), path
            seen.add(folder)
    assert seen == folders


def test_every_namespaced_object_is_in_the_release_namespace(rendered):
    assert {obj["metadata"]["namespace"] for obj in rendered.objects} == {"ml"}


def test_every_object_and_pod_carries_the_standard_labels(rendered):
    for obj in rendered.objects:
        assert STANDARD_LABELS <= set(labels(obj)), obj["metadata"]["name"]
        if pod_spec(obj) is not None:
            assert STANDARD_LABELS <= set(pod_labels(obj)), obj["metadata"]["name"]


def test_workload_selectors_use_only_name_instance_and_component_and_match_their_pods(rendered):
    for obj in rendered.of_kind("Deployment") + rendered.of_kind("PodDisruptionBudget"):
        selector = obj["spec"]["selector"]["matchLabels"]
        assert set(selector) == SELECTOR_LABELS
        if obj["kind"] == "Deployment":
            assert selector.items() <= pod_labels(obj).items()


def test_pdb_selects_exactly_the_worker_pods(rendered):
    pdb = rendered.get("PodDisruptionBudget", "worker")
    assert pdb["spec"]["selector"]["matchLabels"] == {
        k: v for k, v in pod_labels(rendered.get("Deployment", "worker")).items() if k in SELECTOR_LABELS
    }


def test_every_service_selects_the_head_pod(rendered):
    head_labels = pod_labels(rendered.get("Deployment", "head"))
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        assert set(selector) == SELECTOR_LABELS
        assert selector.items() <= head_labels.items(), service["metadata"]["name"]


def test_every_service_port_targets_a_named_port_of_a_head_container(rendered):
    head = rendered.get("Deployment", "head")
    named_ports = {p["name"] for c in pod_spec(head)["containers"] for p in c.get("ports", [])}
    for service in rendered.of_kind("Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named_ports


def test_resource_names_come_from_the_release_name():
    names = {obj["metadata"]["name"] for obj in render().objects}
    assert all(name.startswith("ray-maddpg") for name in names)
    other = {obj["metadata"]["name"] for obj in render({"fullnameOverride": "rl"}).objects}
    assert all(name == "rl" or name.startswith("rl-") for name in other)
