"""Peer control for issue 14: AgileRL's MADDPG on the same mpe2 scenario, budget and schedule.

A claim that fails here (simple_spread: MADDPG collides more than DDPG) is either the env's
reward trade-off or a fault of our code. This script trains a well-kept third-party MADDPG,
AgileRL's, on the same mpe2 env with our preset's schedule, then evaluates it with our own
metric code (``ray_maddpg.experiment.metrics``, Ray-free) on the same 100 fixed episodes as
``bench/reproduce.py`` (seeds 10,000 to 10,099), greedy and sampled.

AgileRL pins its own stack (jax, wandb, minari, peft ...), so it runs in a separate venv:

    make peer-venv
    .venv-peer/bin/python bench/peer_agilerl.py --seed 0 --out bench/results/peer/agilerl-simple_spread-0.json

What is ours and what is AgileRL's:
- AgileRL's: the MADDPG update (critic, then actor against the updated critic; no gradient
  clipping), its networks (MLP encoder and head with LayerNorm, 64 units), its discrete
  actions (Gumbel-softmax output, Ornstein-Uhlenbeck noise, the argmax executed, the soft
  vector stored), its replay buffer and sampler.
- Ours (the preset's schedule): learning rates, gamma, tau, batch 1024, one update per 100
  env steps after 25,600, a 1e6-row buffer, 1.5M env steps; the vectorised loop below
  (mpe2's parallel API, one env per slot, reset when its episode ends); the evaluation.
- ``return`` is the episode's reward summed over agents, as in ``bench/reproduce.py``.
- Agent ids lose their underscore (``agent_0`` -> ``agent0``): AgileRL shares one network
  among ids with a common ``<group>_`` prefix, and MADDPG as the paper and our presets run it
  gives each agent its own networks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))

from ray_maddpg.experiment.metrics import episode_metrics, summarize  # noqa: E402

# The scenarios this control has been run on (mpe2 module, options beside MAX_CYCLES and
# discrete actions); another needs only a line here.
ENV_MODULES = {"simple_spread": ("mpe2.simple_spread_v3", {"N": 3})}
MAX_CYCLES = 25  # the paper's episode length, as in our presets


def make_env(scenario: str):
    module, options = ENV_MODULES[scenario]
    return importlib.import_module(module).parallel_env(
        max_cycles=MAX_CYCLES, continuous_actions=False, **options
    )


def peer_id(agent_id: str) -> str:
    return agent_id.replace("_", "")


def stack(per_env: list[dict[str, np.ndarray]], env_ids: list[str]) -> dict[str, np.ndarray]:
    return {peer_id(a): np.stack([obs[a] for obs in per_env]).astype(np.float32) for a in env_ids}


def build_agent(env, args):
    from agilerl.algorithms import MADDPG

    env_ids = list(env.possible_agents)
    net_config = {
        "latent_dim": args.hidden,
        "encoder_config": {"hidden_size": [args.hidden]},
        "head_config": {"hidden_size": [args.hidden]},
    }
    return MADDPG(
        [env.observation_space(a) for a in env_ids],
        [env.action_space(a) for a in env_ids],
        agent_ids=[peer_id(a) for a in env_ids],
        net_config=net_config,
        batch_size=args.batch_size,
        lr_actor=args.actor_lr,
        lr_critic=args.critic_lr,
        learn_step=args.env_steps_per_update,
        gamma=args.gamma,
        tau=args.tau,
        vect_noise_dim=args.num_envs,
        device="cpu",
    )


def train(args) -> tuple[object, dict]:
    from agilerl.components.data import MultiAgentTransition, transition_to_tensordict
    from agilerl.components.replay_buffer import ReplayBuffer
    from agilerl.components.sampler import Sampler

    envs = [make_env(args.scenario) for _ in range(args.num_envs)]
    env_ids = list(envs[0].possible_agents)
    agent = build_agent(envs[0], args)
    agent.set_training_mode(True)
    memory = ReplayBuffer(max_size=args.buffer_size, device="cpu")
    sampler = Sampler(memory=memory)

    per_env_obs = [env.reset(seed=1_000_000 + args.seed * 10_000 + i)[0] for i, env in enumerate(envs)]
    obs = stack(per_env_obs, env_ids)
    episode_returns = np.zeros(args.num_envs)
    finished: list[float] = []
    curve: list[dict] = []
    env_steps = updates = 0
    steps_since_update = 0
    start = time.perf_counter()
    next_report = args.report_every
    while env_steps < args.steps:
        actions, raw_actions = agent.get_action(obs=obs)
        next_per_env, rewards, dones, reset_slots = [], [], [], []
        for i, env in enumerate(envs):
            step_obs, step_rew, terminated, truncated, _ = env.step(
                {a: int(actions[peer_id(a)][i]) for a in env_ids}
            )
            next_per_env.append(step_obs)
            rewards.append([step_rew[a] for a in env_ids])
            dones.append([terminated[a] for a in env_ids])
            episode_returns[i] += float(sum(step_rew[a] for a in env_ids))
            if all(terminated[a] or truncated[a] for a in env_ids):
                reset_slots.append(i)
        rewards_arr = np.asarray(rewards, dtype=np.float32)
        dones_arr = np.asarray(dones, dtype=np.float32)
        transition = transition_to_tensordict(
            MultiAgentTransition(
                obs=obs,
                action={a: np.asarray(v, dtype=np.float32) for a, v in raw_actions.items()},
                reward={peer_id(a): rewards_arr[:, j : j + 1] for j, a in enumerate(env_ids)},
                next_obs=stack(next_per_env, env_ids),
                done={peer_id(a): dones_arr[:, j : j + 1] for j, a in enumerate(env_ids)},
            )
        )
        transition.batch_size = torch.Size([args.num_envs])
        memory.add(transition)
        env_steps += args.num_envs
        steps_since_update += args.num_envs
        if env_steps >= args.learning_starts and len(memory) >= args.batch_size:
            while steps_since_update >= args.env_steps_per_update:
                agent.learn(sampler.sample(args.batch_size))
                updates += 1
                steps_since_update -= args.env_steps_per_update
        else:
            steps_since_update = 0
        for i in reset_slots:
            finished.append(float(episode_returns[i]))
            episode_returns[i] = 0.0
            next_per_env[i] = envs[i].reset()[0]
        if reset_slots:
            agent.reset_action_noise(reset_slots)
        obs = stack(next_per_env, env_ids)
        if env_steps >= next_report:
            next_report += args.report_every
            recent = float(np.mean(finished[-100:])) if finished else float("nan")
            elapsed = time.perf_counter() - start
            curve.append({"env_steps": env_steps, "updates": updates, "return_last_100": recent})
            print(
                f"{env_steps:>9,} env steps  {updates:>6,} updates  return (last 100 episodes) {recent:8.2f}"
                f"  {env_steps / elapsed:6.0f} steps/s",
                flush=True,
            )
    wall = time.perf_counter() - start
    return agent, {"env_steps": env_steps, "updates": updates, "wall_s": wall, "curve": curve}


def evaluate(agent, args, *, sampled: bool) -> dict[str, float]:
    """``args.eval_episodes`` episodes; episode i is reset with seed ``args.eval_seed + i``."""
    actors = [agent.actors[a] for a in agent.actors]
    saved = [actor.head_net.model.actor_activation_output for actor in actors]
    if not sampled:
        # Greedy: the argmax of the logits, without AgileRL's Gumbel noise or its OU noise.
        for actor in actors:
            actor.head_net.model.actor_activation_output = nn.Identity()
    agent.set_training_mode(sampled)
    # Episodes run num_envs at a time, the shape AgileRL's exploration noise was built for.
    envs = [make_env(args.scenario) for _ in range(args.num_envs)]
    env_ids = list(envs[0].possible_agents)
    results: dict[str, list[float]] = {"return": []}
    try:
        for first in range(0, args.eval_episodes, args.num_envs):
            per_env = [env.reset(seed=args.eval_seed + first + i)[0] for i, env in enumerate(envs)]
            trackers = [episode_metrics(args.scenario) for _ in envs]
            totals = np.zeros(len(envs))
            agent.reset_action_noise(list(range(len(envs))))
            for _ in range(MAX_CYCLES):
                actions, _ = agent.get_action(obs=stack(per_env, env_ids))
                for i, env in enumerate(envs):
                    per_env[i], rewards, _, _, _ = env.step({a: int(actions[peer_id(a)][i]) for a in env_ids})
                    totals[i] += float(sum(rewards[a] for a in env_ids))
                    trackers[i].observe(env.unwrapped.world)
            for i in range(min(len(envs), args.eval_episodes - first)):
                results["return"].append(float(totals[i]))
                for name, value in trackers[i].result().items():
                    results.setdefault(name, []).append(value)
    finally:
        for actor, module in zip(actors, saved, strict=True):
            actor.head_net.model.actor_activation_output = module
        agent.set_training_mode(True)
    return {name: float(np.mean(values)) for name, values in results.items()}


def report(directory: Path) -> int:
    """A markdown table per scenario: mean +- std over seeds of each seed's 100-episode mean."""
    runs = [json.loads(path.read_text()) for path in sorted(directory.glob("agilerl-*.json"))]
    if not runs:
        sys.exit(f"--report: no agilerl-*.json in {directory}")
    for scenario in sorted({run["scenario"] for run in runs}):
        mine = [run for run in runs if run["scenario"] == scenario]
        seeds = ",".join(str(run["seed"]) for run in mine)
        print(f"{scenario}: {mine[0]['peer']} MADDPG, seeds {seeds}, {mine[0]['env_steps']:,} env steps")
        for mode in ("greedy", "sampled"):
            names = list(mine[0][mode])
            print(f"| {mode} | " + " | ".join(names) + " |")
            print("|---" * (len(names) + 1) + "|")
            cells = []
            for name in names:
                values = [run[mode][name] for run in mine]
                stats = summarize(values)  # mean and population std, as reproduce.py's tables
                per_seed = " / ".join(f"{v:.3f}" for v in values)
                cells.append(f"{stats['mean']:.3f} ± {stats['std']:.3f} ({per_seed})")
            print("| AgileRL MADDPG | " + " | ".join(cells) + " |")
        walls = [run["wall_s"] / 60 for run in mine]
        print(f"training wall time per seed: {' / '.join(f'{w:.0f}' for w in walls)} min")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="simple_spread", choices=sorted(ENV_MODULES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1_500_000)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--actor-lr", type=float, default=1e-4)
    parser.add_argument("--critic-lr", type=float, default=1e-3)
    parser.add_argument("--gamma", type=float, default=0.95)
    parser.add_argument("--tau", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--buffer-size", type=int, default=1_000_000)
    parser.add_argument("--learning-starts", type=int, default=25_600)
    parser.add_argument("--env-steps-per-update", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=10_000)
    parser.add_argument("--report-every", type=int, default=50_000)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument(
        "--report", type=Path, metavar="DIR", help="train nothing: tabulate DIR's agilerl-*.json over seeds"
    )
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report)
    try:
        import agilerl  # noqa: F401
    except ImportError:
        sys.exit("AgileRL is not installed here: run `make peer-venv`, then use .venv-peer/bin/python.")

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    print(
        f"AgileRL {version('agilerl')} MADDPG on {args.scenario}, seed {args.seed}, {args.steps:,} env steps",
        flush=True,
    )
    agent, run = train(args)
    result = {
        "peer": f"agilerl {version('agilerl')}",
        "scenario": args.scenario,
        "seed": args.seed,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "scenario", "seed")},
        **run,
        "greedy": evaluate(agent, args, sampled=False),
        "sampled": evaluate(agent, args, sampled=True),
    }
    print(json.dumps({k: result[k] for k in ("wall_s", "updates", "greedy", "sampled")}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
