"""One version everywhere: the trainer package, the image label and tag, the chart's appVersion and default image."""

import tomllib
from pathlib import Path

import yaml
from helm_python import Chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ray-maddpg"


def trainer_version() -> str:
    return tomllib.loads((ROOT / "trainer" / "pyproject.toml").read_text())["project"]["version"]


def chart_meta() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def default_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def rendered_container_images() -> list[str]:
    manifests = Chart.load(str(CHART)).render({}, name="ray-maddpg", namespace="default")
    images = []
    for path, text in manifests.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for obj in yaml.safe_load_all(text):
            images += images_in(obj)
    return images


def images_in(node) -> list[str]:
    """Every `image` of a container or init container, wherever the pod spec sits in the object."""
    if isinstance(node, dict):
        found = [c["image"] for key in ("containers", "initContainers") for c in node.get(key) or []]
        return found + [image for value in node.values() for image in images_in(value)]
    if isinstance(node, list):
        return [image for item in node for image in images_in(item)]
    return []


def test_chart_app_version_is_the_trainer_version():
    assert str(chart_meta()["appVersion"]) == trainer_version()


def test_chart_default_image_tag_is_the_app_version():
    tag = default_values()["image"]["tag"]
    assert tag in ("", chart_meta()["appVersion"]), "an empty tag means appVersion"


def test_every_rendered_container_runs_the_image_tagged_with_the_app_version():
    expected = f"{default_values()['image']['repository']}:{chart_meta()['appVersion']}"
    images = rendered_container_images()
    assert images, "the default render has containers"
    assert set(images) == {expected}


def test_image_label_carries_the_chart_app_version():
    dockerfile = (ROOT / "image" / "Dockerfile").read_text()
    assert f'org.opencontainers.image.version="{chart_meta()["appVersion"]}"' in dockerfile
