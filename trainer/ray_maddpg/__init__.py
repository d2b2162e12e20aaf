"""ray-maddpg: MADDPG on Ray RLlib's new API stack for the mpe2 particle environments."""

__version__ = "0.1.0"
