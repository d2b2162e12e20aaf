"""MADDPG: the plain-torch math (core), the joint replay buffer, and the RLlib glue."""
