"""glibc malloc keeps freed memory for reuse (ray_maddpg/memory.py): fewer page faults per update."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ray_maddpg import memory

glibc_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's mallopt only",
)

# Page faults per fused MADDPG update (3 agents, batch 1024, Ray-free), after 3 warm-up updates;
# "1" first if the settings applied.
FAULTS = textwrap.dedent(
    """
    import resource, torch
    from ray_maddpg.memory import keep_freed_memory
    from ray_maddpg.maddpg.batch import JointBatch
    from ray_maddpg.maddpg.fused import FusedMADDPG, FusedSettings, plain_modules
    applied = keep_freed_memory()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    agents, rows = ["agent_0", "agent_1", "agent_2"], 1024
    fused = FusedMADDPG(plain_modules({a: 18 for a in agents}, {a: 5 for a in agents}), FusedSettings())
    def batch():
        actions = [torch.nn.functional.one_hot(torch.randint(0, 5, (rows,)), 5).float() for _ in agents]
        obs = [torch.randn(rows, 18) for _ in agents]
        done = torch.zeros(rows, 3)
        return JointBatch(obs, actions, torch.randn(rows, 3), [o + 0.1 for o in obs], done, done)
    batches = [batch() for _ in range(8)]
    for b in batches[:3]:
        fused.update(b)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for b in batches[3:]:
        fused.update(b)
    print(int(applied), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
    """
)


def _faults(opt_out: bool) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k != memory.OPT_OUT}
    if opt_out:
        env[memory.OPT_OUT] = "1"
    out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "1", int(faults)


@glibc_linux
def test_freed_blocks_are_reused_without_page_faults_and_the_opt_out_keeps_glibcs_defaults():
    applied, kept = _faults(opt_out=False)
    default_applied, default = _faults(opt_out=True)
    assert applied and not default_applied
    # Measured on a 2-core VM: about 2,000 page faults per update with glibc's defaults, 40 kept.
    assert kept * 5 < default, (kept, default)


def test_the_opt_out_variable_is_honoured(monkeypatch):
    monkeypatch.setenv(memory.OPT_OUT, "1")
    assert memory._apply() is False
