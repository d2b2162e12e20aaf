"""``CompiledOrEager``: ``torch.compile`` where inductor can build kernels, eager otherwise.

Used for the fused learner's losses (``algorithm.compile_losses``) and the batched env's step
(``env.compile``). No Ray imports.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from ray_maddpg.errors import first_line


class CompiledOrEager:
    """``torch.compile(fn)``, falling back to ``fn`` itself, with one warning, when compiling fails
    (inductor needs a C++ compiler for CPU kernels, which e.g. a CUDA runtime image lacks).

    The graphs are specialised to the first call's shapes (``dynamic=False``): callers keep one
    batch size. Inductor caches what it built on disk, so a later process on the same machine
    starts faster than the first. ``setting`` names the option that asked for it in the warning.
    """

    def __init__(self, fn: Callable[..., Any], name: str, setting: str):
        self.fn, self.name, self.setting = fn, name, setting
        self.compiled: Callable[..., Any] | None = torch.compile(fn, dynamic=False)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as err:  # noqa: BLE001 - torch.compile's failures share no base class
                self.compiled = None
                warnings.warn(
                    f"{self.setting}: torch.compile of {self.name} failed ({type(err).__name__}: "
                    f"{first_line(err)}); it runs eagerly, the same computation, slower",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self.fn(*args)
