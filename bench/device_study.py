"""A learning study at the paper's budget without Ray: MADDPG (centralized critics) against DDPG
(local critics), several seeds, everything on one device.

For the GPU machine of ``bench/device_check.py`` (torch and numpy, no Ray, no mpe2). It trains
with the same parts the RLlib trainer uses (``BatchedMPEEnv``, whose dynamics are tested equal
to mpe2's; ``FusedMADDPG``, tested equal to the RLlib learner's update) and the loop of
``device_check.train``: ``--envs`` envs in parallel, a replay buffer on the device, one update
of ``--batch`` per ``--every`` env steps after ``--learning-starts``.

Evaluation: the greedy policy in ``--eval-envs`` fresh envs (one episode each, a fixed seed),
at every ``--eval-every`` env steps and at the end; then the same with actions sampled as in
training (``sampled_<metric>``: openai/maddpg evaluates so), and greedy with the target actors
(``averaged_<metric>``: the Polyak average of the recent actors, tau 0.01, so about the last 100
updates; an average can stop more precisely than an actor still moving). Metrics, at the last step of the episode
(``experiment/metrics.py``'s definitions):

- simple_speaker_listener: ``target_reached`` (listener-goal distance below the sum of their
  sizes) and ``final_distance``; ``target_touched``, on target at any step of the episode (the
  paper does not say which it counts); the speaker's code (``speaker_code``: how many goals get a
  message of their own, and how often the message tells the goal);
- simple: ``on_landmark`` (distance below 0.1) and ``final_distance``;
- every scenario: ``return`` (summed over agents).

Each (variant, seed) runs in its own process, ``--parallel`` at a time (a small update is bound
by kernel launches, so processes share a GPU well):

    python3 bench/device_study.py --scenario simple_speaker_listener --seeds 0 1 2 --out study.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))

from device_check import Device, DeviceReplay, Stepper, policy_outputs  # noqa: E402

from ray_maddpg.envs.batched import make_batched_env  # noqa: E402
from ray_maddpg.maddpg.core import ActionRule  # noqa: E402
from ray_maddpg.maddpg.fused import FusedMADDPG, FusedSettings, plain_modules  # noqa: E402

VARIANTS = {"MADDPG": "centralized", "DDPG": "local"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="simple_speaker_listener")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1_500_000, help="env steps per run (paper: 1.5M)")
    p.add_argument("--envs", type=int, default=256, help="envs stepped in parallel")
    p.add_argument(
        "--rule",
        help="core.ActionRule kind (default: expected, or tanh with --continuous; simplex needs --continuous)",
    )
    p.add_argument(
        "--continuous",
        action="store_true",
        help="mpe2's continuous actions (the paper's executed soft vectors)",
    )
    p.add_argument(
        "--oracle-listener",
        action="store_true",
        help="simple_speaker_listener: the listener sees the goal's colour in place of the message",
    )
    p.add_argument(
        "--velocity-first",
        action="store_true",
        help="the original MPE's integration order (velocity, then position), not mpe2's",
    )
    p.add_argument(
        "--hidden", type=int, nargs="+", default=[64, 64], help="hidden layer widths of actors and critics"
    )
    p.add_argument("--actor-lr", type=float, default=1e-4)
    p.add_argument("--critic-lr", type=float, default=1e-3)
    p.add_argument("--every", type=int, default=100, help="env steps per update (paper: 100)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--learning-starts", type=int, default=25_600)
    p.add_argument("--buffer", type=int, default=1_000_000)
    p.add_argument("--eval-every", type=int, default=250_000)
    p.add_argument("--eval-envs", type=int, default=1000)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--parallel", type=int, default=6, help="runs at a time, one process each")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop every run after this long")
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads per run on CPU (default: the CPU count / --parallel); give 1 when "
        "other jobs share the machine",
    )
    p.add_argument(
        "--bf16-matmuls",
        action="store_true",
        help="the updates' matmuls in bf16 (FusedSettings.matmul_dtype, the trainer's "
        "algorithm.matmul_dtype: bfloat16; weights and Adam stay fp32): about 1.7x faster updates at "
        "256 units on a CPU with AVX512-BF16, docs/results.md",
    )
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--single", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    soft = ("simplex", "tanh")
    if args.continuous and args.rule not in (None, *soft):
        p.error(f"--continuous takes --rule simplex or tanh (got {args.rule})")
    if not args.continuous and args.rule in soft:
        p.error(f"--rule {args.rule} needs --continuous")
    if args.oracle_listener and args.scenario != "simple_speaker_listener":
        p.error("--oracle-listener is for --scenario simple_speaker_listener")
    return args


def study_env(args, num_envs: int, device: Device, seed: int):
    env = make_batched_env(
        args.scenario, num_envs, device=device.torch, seed=seed, continuous_actions=args.continuous
    )
    env.world.velocity_first = args.velocity_first
    return env


@torch.no_grad()
def evaluate(
    learner: FusedMADDPG,
    rules: list[ActionRule],
    args,
    device: Device,
    sampled: bool = False,
    averaged: bool = False,
) -> dict[str, float]:
    """The greedy policy's metrics over one episode in each of ``--eval-envs`` fresh envs; with
    ``sampled``, the policy acting as in training (``ActionRule.explore``); with ``averaged``,
    the target actors in place of the actors."""
    env = study_env(args, args.eval_envs, device, seed=10_000)
    seen = Observations(env, args.oracle_listener)
    obs, total = seen(env.reset()), torch.zeros(args.eval_envs, device=device.torch)
    messages = None
    speaker = env.agents.index("speaker_0") if args.scenario == "simple_speaker_listener" else None
    if speaker is not None:
        listener = env._world_index[env.agents.index("listener_0")]  # its index in the world state
        # On target: closer than the listener's and a landmark's sizes together (0.115).
        reach = env.world.size[listener] + env.world.size[env.world.num_agents]
    touched = torch.zeros(args.eval_envs, dtype=torch.bool, device=device.torch)
    for _ in range(env.max_cycles):
        outs = policy_outputs(learner, obs, averaged=averaged)
        actions = [
            rule.explore(o) if sampled else rule.greedy(o) for rule, o in zip(rules, outs, strict=True)
        ]
        if messages is None and speaker is not None:
            # The speaker sees only the goal's colour, so its greedy message is fixed per episode.
            messages = actions[speaker].argmax(-1)  # a soft message's strongest channel
        obs, rewards, _, _ = env.step([r.to_mpe_units(a) for r, a in zip(rules, actions, strict=True)])
        obs = seen(obs)
        total += rewards.sum(1)
        if speaker is not None:
            touched |= goal_distance(env, listener) < reach
    metrics = {"return": float(total.mean())}
    world = env.world
    if args.scenario == "simple_speaker_listener":
        metrics.update(speaker_code(env.scenario.goal, messages, env.act_dims[speaker]))
        distance = goal_distance(env, listener)
        metrics.update(
            final_distance=float(distance.mean()),
            target_reached=float((distance < reach).float().mean()),
            # The paper does not say whether its "target reach" is at the end or at any step.
            target_touched=float(touched.float().mean()),
        )
        metrics.update(
            listener_landmarks(world.agent_pos[:, listener], world.landmark_pos, env.scenario.goal)
        )
    elif args.scenario == "simple":
        distance = (world.agent_pos[:, 0] - world.landmark_pos[:, 0]).norm(dim=-1)
        metrics.update(
            final_distance=float(distance.mean()), on_landmark=float((distance < 0.1).float().mean())
        )
    return metrics


def goal_distance(env, listener: int) -> torch.Tensor:
    """(E,) the speaker-listener's listener (``listener``: its world index) to its goal, now."""
    world = env.world
    return (world.agent_pos[:, listener] - world.landmark_pos[world.env_index, env.scenario.goal]).norm(
        dim=-1
    )


SAMPLED_METRICS = ("return", "final_distance", "target_reached", "target_touched", "on_landmark")


def evaluations(learner: FusedMADDPG, rules: list[ActionRule], args, device: Device) -> dict[str, float]:
    """``evaluate``'s greedy metrics, its sampled ones (openai/maddpg's benchmark protocol) as
    ``sampled_<metric>`` and the target actors' greedy ones as ``averaged_<metric>``."""
    sampled = evaluate(learner, rules, args, device, sampled=True)
    averaged = evaluate(learner, rules, args, device, averaged=True)
    return {
        **evaluate(learner, rules, args, device),
        **{f"sampled_{k}": v for k, v in sampled.items() if k in SAMPLED_METRICS},
        **{f"averaged_{k}": v for k, v in averaged.items() if k in SAMPLED_METRICS},
    }


class Observations:
    """What the agents see: the env's observations, or with ``oracle`` the listener's message
    (its last entries) replaced by the speaker's observation, the goal's colour. An oracle
    listener needs no message, so its failures are its own."""

    def __init__(self, env, oracle: bool):
        self.oracle = oracle
        if oracle:
            self.speaker, self.listener = env.agents.index("speaker_0"), env.agents.index("listener_0")

    def __call__(self, obs: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.oracle:
            return obs
        goal_colour = obs[self.speaker]
        obs = list(obs)
        obs[self.listener] = torch.cat([obs[self.listener][:, : -goal_colour.shape[1]], goal_colour], dim=1)
        return obs


def listener_landmarks(
    position: torch.Tensor, landmarks: torch.Tensor, goal: torch.Tensor
) -> dict[str, float]:
    """Where the listener ends, against the landmarks: ``goal_nearest``, the share of episodes
    whose nearest landmark is the goal (it went to the right one), and ``nearest_distance``, the
    mean distance to the nearest landmark, whichever it is (how precisely it stops); and
    ``toward_others``, the mean cosine between the miss (listener - goal) and the direction from
    the goal to the other landmarks' centroid (near 1: it hedges toward the others; near 0: the
    miss has no such direction).
    ``position``: (E, 2); ``landmarks``: (E, L, 2); ``goal``: (E,) landmark indices."""
    distances = (landmarks - position.unsqueeze(1)).norm(dim=-1)
    nearest = distances.min(dim=1)
    rows = torch.arange(len(goal), device=goal.device)
    goal_pos = landmarks[rows, goal]
    others = (landmarks.sum(dim=1) - goal_pos) / (landmarks.shape[1] - 1)
    miss, hedge = position - goal_pos, others - goal_pos
    return {
        "goal_nearest": float((nearest.indices == goal).float().mean()),
        "nearest_distance": float(nearest.values.mean()),
        "toward_others": float(torch.nn.functional.cosine_similarity(miss, hedge, dim=-1).mean()),
    }


def speaker_code(goals: torch.Tensor, messages: torch.Tensor, num_messages: int) -> dict[str, float]:
    """How well the speaker's greedy message names the goal: ``code_distinct``, how many goals get
    a message of their own (as each goal's most frequent message); ``goal_from_message``, the
    share of episodes whose goal is the most frequent goal of their message (what a listener
    reading the message best could get: about 1/3 for a constant message, 1.0 for a code)."""
    num_goals = int(goals.max()) + 1
    counts = torch.zeros(num_goals, num_messages, device=goals.device)
    counts.index_put_((goals, messages), torch.ones_like(goals, dtype=counts.dtype), accumulate=True)
    return {
        "code_distinct": float(len(set(counts.argmax(1).tolist()))),
        "goal_from_message": float(counts.max(0).values.sum() / len(goals)),
    }


def run(args, variant: str, seed: int) -> dict:
    """One training run; returns its settings, curve and final evaluation."""
    device = Device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.torch.type == "cpu":
        # Runs beside each other on torch's default threads oversubscribe the cores and crawl
        # (10x and worse), also when they come from separate commands: hence --threads.
        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // args.parallel))
    torch.manual_seed(seed)
    env = study_env(args, args.envs, device, seed=seed)
    obs_dims = dict(zip(env.agents, env.obs_dims, strict=True))
    act_dims = dict(zip(env.agents, env.act_dims, strict=True))
    rule = args.rule or ("tanh" if args.continuous else "expected")
    modules = plain_modules(
        obs_dims,
        act_dims,
        critic_kind=VARIANTS[variant],
        action_rule=rule,
        actor_hidden=args.hidden,
        critic_hidden=args.hidden,
        device=device.torch,
    )
    settings = FusedSettings(
        actor_lr=args.actor_lr,
        critic_lr=args.critic_lr,
        matmul_dtype="bfloat16" if args.bf16_matmuls else "float32",
    )
    learner = FusedMADDPG.from_modules(modules, settings)
    rules = [modules[a].action_rule for a in env.agents]
    replay = DeviceReplay(args.buffer, env.obs_dims, env.act_dims, device)
    replay.generator.manual_seed(seed)
    stepper, curve, seen = Stepper(env), [], Observations(env, args.oracle_listener)
    env_steps = updates = 0
    next_eval = args.eval_every
    start = time.perf_counter()
    completed = True
    for _ in range(math.ceil(args.steps / args.envs)):
        obs = seen(stepper.obs)
        with torch.no_grad():
            actions = [r.explore(o) for r, o in zip(rules, policy_outputs(learner, obs), strict=True)]
        next_obs, rewards, terminated, _ = stepper.step(
            [r.to_mpe_units(a) for r, a in zip(rules, actions, strict=True)]
        )
        replay.add(obs, actions, rewards, seen(next_obs), terminated)
        env_steps += args.envs
        due = max(0, (env_steps - args.learning_starts) // args.every) - updates
        for _ in range(due):
            learner.update(replay.sample(args.batch))
        updates += due
        if env_steps >= next_eval:
            point = {"env_steps": env_steps, "seconds": round(time.perf_counter() - start, 1)}
            point.update(evaluations(learner, rules, args, device))
            curve.append(point)
            # stderr: the parent passes it through as it comes (it reads stdout only at the end)
            print(json.dumps({"variant": variant, "seed": seed, **point}), file=sys.stderr, flush=True)
            next_eval += args.eval_every
        if time.perf_counter() - start > args.budget_s:
            completed = False
            break
    final = evaluations(learner, rules, args, device)
    return {
        "variant": variant,
        "seed": seed,
        "device": device.describe(),
        "completed": completed,
        "env_steps": env_steps,
        "updates": updates,
        "wall_s": round(time.perf_counter() - start, 1),
        "final": final,
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.single:
        print("RESULT " + json.dumps(run(args, args.single[0], int(args.single[1]))), flush=True)
        return 0
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    results, running = [], []
    start = time.perf_counter()
    while jobs or running:
        while jobs and len(running) < args.parallel:
            variant, seed = jobs.pop(0)
            cmd = [sys.executable, __file__, *passthrough, "--single", variant, str(seed)]
            running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        for proc in list(running):
            if proc.poll() is None:
                continue
            running.remove(proc)
            for line in proc.stdout.read().splitlines():
                if line.startswith("RESULT "):
                    results.append(json.loads(line[len("RESULT ") :]))
                else:
                    print(line, flush=True)
        time.sleep(0.5)
    print(f"{'variant':8s} {'seed':>4s} {'steps':>9s} {'wall':>6s}  final metrics")
    for r in sorted(results, key=lambda r: (r["variant"], r["seed"])):
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in r["final"].items())
        stopped = "" if r["completed"] else f"  (stopped by --budget-s {args.budget_s:g})"
        print(
            f"{r['variant']:8s} {r['seed']:>4d} {r['env_steps']:>9,d} {r['wall_s']:>5.0f}s  {metrics}{stopped}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "runs": results}, indent=1))
    print(f"total: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
