"""Multi-agent environments: the mpe2 particle scenarios behind RLlib's MultiAgentEnv API."""

from ray_maddpg.envs.mpe import (
    ENV_NAME,
    SCENARIOS,
    MPEMultiAgentEnv,
    Scenario,
    make_env,
    register_mpe_env,
    team_of,
    teams_of,
    validate_env_config,
)

__all__ = [
    "ENV_NAME",
    "SCENARIOS",
    "MPEMultiAgentEnv",
    "Scenario",
    "make_env",
    "register_mpe_env",
    "team_of",
    "teams_of",
    "validate_env_config",
]
