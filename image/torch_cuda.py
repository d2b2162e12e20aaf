"""Keep the image's torch wheel on the base image's CUDA version (run by image/Dockerfile).

python torch_cuda.py index-url   print the wheel index: $TORCH_INDEX_URL, else the
                                 PyTorch index for the base image's $CUDA_VERSION (13.0.2 -> cu130)
python torch_cuda.py check       exit non-zero unless the installed torch is built for
                                 $CUDA_VERSION's major.minor (skipped when TORCH_INDEX_URL is set
                                 and the base image has no CUDA_VERSION)
"""

import os
import sys

PYTORCH_INDEX = "https://download.pytorch.org/whl"


def cuda_major_minor(cuda_version: str) -> str:
    """'13.0.2' -> '13.0'; '' stays ''."""
    return ".".join(cuda_version.split(".")[:2])


def index_url(cuda_version: str, override: str = "") -> str:
    if override:
        return override
    if not cuda_version:
        raise SystemExit("The base image sets no CUDA_VERSION: pass --build-arg TORCH_INDEX_URL=...")
    return f"{PYTORCH_INDEX}/cu{cuda_major_minor(cuda_version).replace('.', '')}"


def mismatch(cuda_version: str, torch_cuda: str | None, torch_version: str) -> str | None:
    """The build's error message when torch's CUDA differs from the base image's, else None."""
    want = cuda_major_minor(cuda_version)
    if not want or torch_cuda == want:
        return None
    got = torch_cuda or "none (a CPU wheel)"
    return (
        f"torch {torch_version} is built for CUDA {got}, but the base image has CUDA {want}: "
        f"pass --build-arg TORCH_INDEX_URL={index_url(cuda_version)}"
    )


def main(argv: list[str]) -> int | str | None:
    cuda_version = os.environ.get("CUDA_VERSION", "")
    if argv == ["index-url"]:
        print(index_url(cuda_version, os.environ.get("TORCH_INDEX_URL", "")))
        return 0
    if argv == ["check"]:
        import torch

        return mismatch(cuda_version, torch.version.cuda, torch.__version__)
    return __doc__


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
