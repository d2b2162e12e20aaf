"""The RLModule's old import path: checkpoints written before it moved to ``maddpg/torch/`` name
this module in their pickled module spec, and still load through it."""

from ray_maddpg.maddpg.torch.maddpg_torch_rl_module import MADDPGTorchRLModule

__all__ = ["MADDPGTorchRLModule"]
