#!/usr/bin/env bash
# Build the training image (`make image`) with docker, else podman, else buildah.
# Environment: BASE_IMAGE and TORCH_INDEX_URL become build args when set; IMAGE overrides the
# repository name (default ray-maddpg); the tag is trainer/pyproject.toml's version.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "${root}/trainer/pyproject.toml" | head -n 1)"
if [[ -z "${version}" ]]; then
    echo "image/build.sh: no version = \"...\" line in trainer/pyproject.toml" >&2
    exit 1
fi
tag="${IMAGE:-ray-maddpg}:${version}"

build_args=()
for name in BASE_IMAGE TORCH_INDEX_URL; do
    if [[ -n "${!name:-}" ]]; then
        build_args+=(--build-arg "${name}=${!name}")
    fi
done

# The Dockerfile's cache mounts need BuildKit: docker through buildx; podman and buildah have them built in.
builder=()
if command -v docker >/dev/null 2>&1; then
    if docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        builder=(docker buildx build --load)
    else
        echo "image/build.sh: docker is here but unusable (no daemon answers, or no buildx plugin); trying podman, then buildah" >&2
    fi
fi
if [[ ${#builder[@]} -eq 0 ]] && command -v podman >/dev/null 2>&1; then
    builder=(podman build)
elif [[ ${#builder[@]} -eq 0 ]] && command -v buildah >/dev/null 2>&1; then
    builder=(buildah build)
fi
if [[ ${#builder[@]} -eq 0 ]]; then
    echo "image/build.sh: no usable container builder: install docker (with buildx and a running daemon), podman or buildah to build ${tag}" >&2
    exit 127
fi

echo "Building ${tag} with ${builder[0]}" >&2
exec "${builder[@]}" ${build_args[@]+"${build_args[@]}"} --file "${root}/image/Dockerfile" --tag "${tag}" "${root}"
