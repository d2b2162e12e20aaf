"""The torch learner of MADDPG."""

from ray_maddpg.maddpg.torch.maddpg_torch_learner import MADDPGTorchLearner

__all__ = ["MADDPGTorchLearner"]
