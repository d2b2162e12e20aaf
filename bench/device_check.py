"""A GPU check without Ray: batched envs, sampling, the fused learner and one paper-budget training
run, all on one device (CUDA when there is one, else the CPU).

For a machine with Python, torch and numpy but no Ray and no mpe2 (DESIGN.md, "The GPU machine
we can test on"): it imports only the Ray-free parts of the package (``envs.batched``,
``maddpg.core``, ``maddpg.fused``, ``memory``) from this checkout's ``trainer/``, so nothing is installed.

    python3 bench/device_check.py [--out results.json] [--quick] [--device cpu|cuda] [--compile]

What it prints (and writes to ``--out`` as JSON):

- **env**: joint env steps/s of ``BatchedMPEEnv`` (simple_spread, simple_world_comm) with random
  one-hot actions, at 1k, 4k, 16k and 64k envs (a joint env step = one step of one env, all
  agents);
- **sampling**: the same with a policy: one ``JointActors`` forward for all agents and envs and
  ``ActionRule.explore`` (straight_through) per step (nothing stored);
- **learner**: ``FusedMADDPG`` updates/s at batch 1024 for 3 agents (simple_spread), 6
  (simple_world_comm) and 12 (simple_spread, N=12), the batch sampled on the device each update;
- **train**: simple_spread (3 agents) at the paper's budget, entirely on the device: 1.5M env
  steps from ``--envs`` envs in parallel, learning after 25,600 env steps, one update of batch
  1024 per 100 env steps (about 14,745 updates), a replay buffer of 1e6 rows on the device, the
  straight_through rule. It reports wall time, env steps/s, updates/s, the learner's share of the
  wall time, the mean return (summed over agents, with exploration) of the last 100 finished
  episodes, and a greedy return (one episode in each of ``--greedy-envs`` fresh envs).

Every timing loop is capped in seconds (``--seconds``) and the training run by
``--train-budget-s`` (then it stops early and says so), so the full check fits in about 8 minutes
on an H200. ``--quick`` shrinks everything for a CPU smoke run (tests/unit/test_device_check.py).
``--compile`` runs the learner with ``compile_losses`` (torch.compile of its losses; on CUDA,
inductor's Triton kernels), so a second run with it gives the compiled figures side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))

from ray_maddpg.envs.batched import BatchedMPEEnv, make_batched_env  # noqa: E402
from ray_maddpg.maddpg.batch import JointBatch  # noqa: E402
from ray_maddpg.maddpg.core import ActionRule, JointActors  # noqa: E402
from ray_maddpg.maddpg.fused import FusedMADDPG, FusedSettings, plain_modules  # noqa: E402
from ray_maddpg.memory import keep_freed_memory  # noqa: E402

SCENARIOS = ("simple_spread", "simple_world_comm")
# Learner sizes: agents -> (scenario, options).
LEARNERS = {3: ("simple_spread", {}), 6: ("simple_world_comm", {}), 12: ("simple_spread", {"N": 12})}
RULE = ActionRule("straight_through")

FULL = {
    "env_sizes": [1024, 4096, 16384, 65536],
    "seconds": 2.5,
    "learner_batch": 1024,
    "train_envs": 1024,
    "train_env_steps": 1_500_000,
    "learning_starts": 25_600,
    "train_batch": 1024,
    "buffer_size": 1_000_000,
    "greedy_envs": 1000,
}
QUICK = {
    "env_sizes": [64, 256],
    "seconds": 0.2,
    "learner_batch": 256,
    "train_envs": 64,
    "train_env_steps": 30_000,
    "learning_starts": 2_560,
    "train_batch": 256,
    "buffer_size": 30_000,
    "greedy_envs": 100,
}
UPDATE_EVERY = 100  # env steps per update: the paper's replay ratio
SEED = 0


class Device:
    """The device and a way to wait for it (timings must include the queued kernels)."""

    def __init__(self, name: str):
        self.torch = torch.device(name)
        self.cuda = self.torch.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.torch)

    def describe(self) -> str:
        if self.cuda:
            return torch.cuda.get_device_name(self.torch)
        return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def rate(step: Callable[[], None], work: int, seconds: float, device: Device, warmup: int = 3) -> float:
    """``work`` units per call of ``step``, per second, over about ``seconds`` (after ``warmup`` calls).

    Calls run in chunks with one sync after each, so the clock sees the device's work.
    """
    for _ in range(warmup):
        step()
    device.sync()
    calls, chunk, start = 0, 1, time.perf_counter()
    while True:
        for _ in range(chunk):
            step()
        device.sync()
        calls += chunk
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * work / elapsed
        chunk = min(chunk * 2, 16)


def random_actions(env: BatchedMPEEnv, generator: torch.Generator) -> list[torch.Tensor]:
    """One random one-hot row per env and agent."""
    eye = [torch.eye(d, device=env.device) for d in env.act_dims]
    return [
        e[torch.randint(d, (env.num_envs,), device=env.device, generator=generator)]
        for e, d in zip(eye, env.act_dims, strict=True)
    ]


def explore_all(outs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``ActionRule.explore`` for every agent: one call per action width (one for simple_spread)."""
    actions: list[torch.Tensor | None] = [None] * len(outs)
    widths: dict[int, list[int]] = {}
    for i, out in enumerate(outs):
        widths.setdefault(out.shape[-1], []).append(i)
    for idx in widths.values():
        explored = RULE.explore(torch.stack([outs[i] for i in idx])).unbind(0)
        for i, a in zip(idx, explored, strict=True):
            actions[i] = a
    return actions


class Stepper:
    """Steps a batched env, resetting every env after ``max_cycles`` steps.

    All envs start together and these scenarios (default options) never end early, so every env
    truncates at the same step: the host counts steps and nothing waits for the device.
    """

    def __init__(self, env: BatchedMPEEnv):
        self.env = env
        self.obs = env.reset()
        self.t = 0

    def step(self, actions: Sequence[torch.Tensor]):
        next_obs, rewards, terminated, truncated = self.env.step(actions)
        self.t += 1
        ended = self.t % self.env.max_cycles == 0
        self.obs = self.env.reset() if ended else next_obs
        return next_obs, rewards, terminated, ended


@torch.no_grad()
def env_rates(device: Device, sizes: Sequence[int], seconds: float) -> tuple[dict, dict]:
    """Joint env steps/s with random actions, and with a policy (JointActors + explore)."""
    env_rate: dict[str, dict[str, float]] = {}
    sampling_rate: dict[str, dict[str, float]] = {}
    for scenario in SCENARIOS:
        env_rate[scenario], sampling_rate[scenario] = {}, {}
        for n in sizes:
            env = make_batched_env(scenario, n, device=device.torch, seed=SEED)
            stepper = Stepper(env)
            generator = torch.Generator(device=device.torch).manual_seed(SEED)
            env_rate[scenario][str(n)] = rate(
                lambda s=stepper, g=generator: s.step(random_actions(s.env, g)), n, seconds, device
            )
            obs_dims = dict(zip(env.agents, env.obs_dims, strict=True))
            act_dims = dict(zip(env.agents, env.act_dims, strict=True))
            modules = plain_modules(obs_dims, act_dims, device=device.torch)
            actors = JointActors([modules[a].actor for a in env.agents])
            sampling_rate[scenario][str(n)] = rate(
                lambda s=stepper, p=actors: s.step(explore_all(p(s.obs))), n, seconds, device
            )
            print(
                f"  {scenario:18s} {n:>6d} envs: env {env_rate[scenario][str(n)]:>14,.0f} steps/s, "
                f"sampling {sampling_rate[scenario][str(n)]:>14,.0f} steps/s",
                flush=True,
            )
            del env, stepper, modules, actors
    return env_rate, sampling_rate


class DeviceReplay:
    """A ring buffer of joint transitions as tensors on one device (no host round trip).

    Rows hold every agent's columns side by side (sorted agent order); ``sample`` returns the
    ``JointBatch`` of tensors that ``FusedMADDPG.update`` takes (no truncations: all zeros).
    """

    def __init__(self, capacity: int, obs_dims: Sequence[int], act_dims: Sequence[int], device: Device):
        self.capacity, self.obs_dims, self.act_dims = capacity, list(obs_dims), list(act_dims)
        n, dev = len(obs_dims), device.torch
        self.obs = torch.zeros(capacity, sum(obs_dims), device=dev)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros(capacity, sum(act_dims), device=dev)
        self.rewards = torch.zeros(capacity, n, device=dev)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=dev)
        self.generator = torch.Generator(device=dev).manual_seed(SEED)
        self.pos = self.size = 0

    @property
    def nbytes(self) -> int:
        tensors = (self.obs, self.next_obs, self.actions, self.rewards, self.terminated)
        return sum(t.numel() * t.element_size() for t in tensors)

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        """B rows: per-agent lists of (B, dim) tensors, rewards (B, N), terminated (B,)."""
        columns = (torch.cat(obs, 1), torch.cat(actions, 1), rewards, torch.cat(next_obs, 1), terminated)
        batch = columns[0].shape[0]
        first = min(batch, self.capacity - self.pos)  # up to the end, then from the start
        for dst, src in zip(
            (self.obs, self.actions, self.rewards, self.next_obs, self.terminated), columns, strict=True
        ):
            dst[self.pos : self.pos + first] = src[:first]
            dst[: batch - first] = src[first:]
        self.pos = (self.pos + batch) % self.capacity
        self.size = min(self.size + batch, self.capacity)

    def sample(self, batch: int) -> JointBatch:
        idx = torch.randint(self.size, (batch,), device=self.obs.device, generator=self.generator)
        n = len(self.obs_dims)
        terminated = self.terminated[idx, None].expand(batch, n)
        return JointBatch(
            obs=list(self.obs[idx].split(self.obs_dims, dim=1)),
            actions=list(self.actions[idx].split(self.act_dims, dim=1)),
            rewards=self.rewards[idx],
            next_obs=list(self.next_obs[idx].split(self.obs_dims, dim=1)),
            terminated=terminated,
            truncated=torch.zeros_like(terminated),
        )


def setup(
    scenario: str, num_envs: int, device: Device, buffer_size: int, compile_losses: bool = False, **options
):
    """An env, one plain module per agent on the device, their fused learner (``compile_losses``:
    its losses through torch.compile), and a replay buffer."""
    env = make_batched_env(scenario, num_envs, device=device.torch, seed=SEED, **options)
    obs_dims = dict(zip(env.agents, env.obs_dims, strict=True))
    act_dims = dict(zip(env.agents, env.act_dims, strict=True))
    torch.manual_seed(SEED)
    modules = plain_modules(obs_dims, act_dims, action_rule=RULE.kind, device=device.torch)
    learner = FusedMADDPG(modules, FusedSettings(), compile_losses=compile_losses)
    replay = DeviceReplay(buffer_size, env.obs_dims, env.act_dims, device)
    return env, learner, replay


@torch.no_grad()
def policy_outputs(
    learner: FusedMADDPG, obs: Sequence[torch.Tensor], averaged: bool = False
) -> list[torch.Tensor]:
    """Every agent's raw actor output from the learner's own stacked actors (no weight copies);
    with ``averaged``, from the target actors (the Polyak average of the recent actors)."""
    by_agent = dict(zip(learner.agents, obs, strict=True))
    out: dict[str, torch.Tensor] = {}
    for group in learner.actors:
        net = group.target if averaged else group.net
        for mid, rows in group.per_module(net(group.rows(by_agent))).items():
            out.update(zip(learner.modules[mid].agents, rows.unbind(1), strict=True))
    return [out[a] for a in learner.agents]


def fill_with_random_steps(
    stepper: Stepper, replay: DeviceReplay, generator: torch.Generator, steps: int
) -> None:
    """``steps`` steps of every env with uniform random actions, each stored in ``replay``."""
    for _ in range(steps):
        obs, actions = stepper.obs, random_actions(stepper.env, generator)
        next_obs, rewards, terminated, _ = stepper.step(actions)
        replay.add(obs, actions, rewards, next_obs, terminated)


def learner_rates(device: Device, batch: int, seconds: float, compile_losses: bool) -> dict[str, float]:
    """Fused updates/s at ``batch`` for 3, 6 and 12 agents, on random-action transitions (the
    compile, with ``compile_losses``, happens in the untimed warm-up)."""
    rates = {}
    for agents, (scenario, options) in LEARNERS.items():
        env, learner, replay = setup(scenario, 1024, device, 16 * 1024, compile_losses, **options)
        generator = torch.Generator(device=device.torch).manual_seed(SEED)
        fill_with_random_steps(Stepper(env), replay, generator, 16)
        assert len(env.agents) == agents, (scenario, env.agents)

        def update(learner=learner, replay=replay):
            learner.update(replay.sample(batch))

        rates[str(agents)] = rate(update, 1, seconds, device)
        print(
            f"  {agents:>2d} agents ({scenario}{options or ''}): {rates[str(agents)]:,.1f} updates/s",
            flush=True,
        )
    return rates


def train(device: Device, cfg: dict, budget_s: float, compile_losses: bool = False) -> dict:
    """simple_spread at the paper's schedule, everything on the device (the compile, with
    ``compile_losses``, counts in the learner's time)."""
    num_envs = cfg["train_envs"]
    env, learner, replay = setup("simple_spread", num_envs, device, cfg["buffer_size"], compile_losses)
    steps_per_env = math.ceil(cfg["train_env_steps"] / num_envs)
    stepper = Stepper(env)
    ep_return = torch.zeros(num_envs, device=device.torch)
    finished: list[torch.Tensor] = []  # summed-over-agents returns of finished episodes
    env_steps = updates = 0
    learn_s = 0.0
    completed = True
    device.sync()
    start = time.perf_counter()
    for _ in range(steps_per_env):
        obs = stepper.obs
        actions = explore_all(policy_outputs(learner, obs))
        next_obs, rewards, terminated, ended = stepper.step(actions)
        replay.add(obs, actions, rewards, next_obs, terminated)
        ep_return += rewards.sum(1)
        if ended:
            finished.append(ep_return.clone())
            ep_return.zero_()
        env_steps += num_envs
        due = max(0, (env_steps - cfg["learning_starts"]) // UPDATE_EVERY) - updates
        if due > 0:
            device.sync()
            t0 = time.perf_counter()
            for _ in range(due):
                learner.update(replay.sample(cfg["train_batch"]))
            device.sync()
            learn_s += time.perf_counter() - t0
            updates += due
        if time.perf_counter() - start > budget_s:
            completed = False
            break
    device.sync()
    wall = time.perf_counter() - start
    returns = torch.cat(finished) if finished else torch.zeros(0, device=device.torch)
    last = returns[-100:]
    result = {
        "scenario": "simple_spread",
        "agents": len(env.agents),
        "num_envs": num_envs,
        "env_steps": env_steps,
        "env_steps_target": cfg["train_env_steps"],
        "learning_starts": cfg["learning_starts"],
        "update_every": UPDATE_EVERY,
        "batch": cfg["train_batch"],
        "buffer_size": cfg["buffer_size"],
        "buffer_gb": replay.nbytes / 1e9,
        "action_rule": RULE.kind,
        "completed": completed,
        "budget_s": budget_s,
        "updates": updates,
        "wall_s": wall,
        "env_steps_per_s": env_steps / wall,
        "updates_per_s": updates / wall,
        "learner_s": learn_s,
        "learner_share": learn_s / wall,
        "episodes_finished": int(returns.numel()),
        "return_last_100": float(last.mean()) if last.numel() else float("nan"),
        "return_last_round": float(finished[-1].mean()) if finished else float("nan"),
        "return_first_round": float(finished[0].mean()) if finished else float("nan"),
    }
    result["greedy_return"] = greedy_return(learner, cfg["greedy_envs"], device)
    return result


@torch.no_grad()
def greedy_return(learner: FusedMADDPG, num_envs: int, device: Device) -> float:
    """The mean return (summed over agents) of one greedy episode in each of ``num_envs`` new envs."""
    env = make_batched_env("simple_spread", num_envs, device=device.torch, seed=SEED + 1)
    obs, total = env.reset(), torch.zeros(num_envs, device=device.torch)
    for _ in range(env.max_cycles):
        obs, rewards, _, _ = env.step([RULE.greedy(o) for o in policy_outputs(learner, obs)])
        total += rewards.sum(1)
    return float(total.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="write the figures as JSON to this file (default: print only)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke run")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seconds", type=float, help="seconds per timing loop (default 2.5; quick 0.2)")
    parser.add_argument("--envs", type=int, help="envs in parallel in the training run (default 1024)")
    parser.add_argument(
        "--train-budget-s", type=float, default=300.0, help="stop the training run after this long"
    )
    parser.add_argument("--skip-train", action="store_true", help="timings only")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="the learner's losses through torch.compile (FusedMADDPG(compile_losses=True); minutes cold)",
    )
    args = parser.parse_args(argv)

    cfg = dict(QUICK if args.quick else FULL)
    if args.seconds is not None:
        cfg["seconds"] = args.seconds
    if args.envs is not None:
        cfg["train_envs"] = args.envs
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    device = Device(name)
    torch.manual_seed(SEED)
    start = time.perf_counter()
    if not device.cuda:
        print("No CUDA device here (torch.cuda.is_available() is False): running on the CPU.")
    print(
        f"device: {device.torch} ({device.describe()}), torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    report: dict = {
        "device": device.torch.type,
        "device_name": device.describe(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "quick": args.quick,
        "compile_losses": args.compile,
        "glibc_malloc_keeps_freed_memory": keep_freed_memory(),  # as the trainer's processes do
        "settings": cfg,
    }

    print(f"batched envs (joint env steps/s; {cfg['seconds']} s per figure):", flush=True)
    report["env_steps_per_s"], report["sampling_steps_per_s"] = env_rates(
        device, cfg["env_sizes"], cfg["seconds"]
    )
    compiled = ", compile_losses" if args.compile else ""
    print(f"fused learner (batch {cfg['learner_batch']}{compiled}):", flush=True)
    report["learner_updates_per_s"] = learner_rates(
        device, cfg["learner_batch"], cfg["seconds"], args.compile
    )
    if not args.skip_train:
        print(
            f"training: simple_spread, {cfg['train_env_steps']:,} env steps on {cfg['train_envs']} envs, "
            f"batch {cfg['train_batch']} every {UPDATE_EVERY} env steps after {cfg['learning_starts']:,}",
            flush=True,
        )
        t = report["train"] = train(device, cfg, args.train_budget_s, args.compile)
        print(
            f"  {'done' if t['completed'] else 'STOPPED at the time budget'}: {t['env_steps']:,} env steps, "
            f"{t['updates']:,} updates in {t['wall_s']:.1f} s ({t['env_steps_per_s']:,.0f} env steps/s, "
            f"{t['updates_per_s']:.1f} updates/s, learner {100 * t['learner_share']:.0f}% of the wall time)\n"
            f"  return (sum over agents): last 100 episodes {t['return_last_100']:.1f} with exploration "
            f"(first episodes {t['return_first_round']:.1f}), greedy {t['greedy_return']:.1f}",
            flush=True,
        )
    report["total_s"] = time.perf_counter() - start
    print(f"total: {report['total_s']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
