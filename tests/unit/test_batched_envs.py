"""The batched torch envs against mpe2: same dynamics, observations, rewards and episode ends.

The exactness tests copy each mpe2 env's state after a seeded reset into one batched env, apply
the same random actions to both for a whole episode, and require agreement to 1e-5 at every step.
They run the batched env in float64, as mpe2 computes (there the two agree to ~1e-7, the float32
rounding of mpe2's observations, and ~1e-16 in rewards). In float32 the stiff contact forces
(``contact_margin`` 1e-3) amplify rounding to ~2e-5 within an episode. mpe2's observations come
through ``MPEMultiAgentEnv.step_joint`` (float32), its rewards from the raw env (float64).

Continuous actions go to mpe2 as the wrapper's [-1, 1] and to the batched env as the [0, 1]
values the wrapper computes from them. They sit on a 2^-11 grid, so that mpe2's float32
``right - left`` is exact and both envs see the same force.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ray_maddpg.envs import SCENARIOS as MPE_SCENARIOS
from ray_maddpg.envs import make_env
from ray_maddpg.envs.batched import SCENARIOS, make_batched_env, scenario_agents, scenario_options
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg.layout import AgentLayout

ATOL = 1e-5
BATCH = 20  # mpe2 envs stepped side by side with one batched env of BATCH envs

# (scenario, options, episodes per action mode). Every scenario with mpe2's defaults, plus the
# options that change shapes or logic: more agents, partial observability (with zero padding),
# curriculum, early termination, and world_comm's other team sizes.
CASES = [
    ("simple", {}, 120),
    ("simple_adversary", {}, 120),
    ("simple_crypto", {}, 120),
    ("simple_push", {}, 120),
    ("simple_reference", {}, 120),
    ("simple_speaker_listener", {}, 120),
    ("simple_spread", {}, 120),
    ("simple_tag", {}, 100),
    ("simple_world_comm", {}, 40),
    ("simple_adversary", {"N": 3, "num_agent_neighbors": 2, "num_landmark_neighbors": 4}, 40),
    (
        "simple_spread",
        {"N": 4, "local_ratio": 0.25, "num_agent_neighbors": 2, "num_landmark_neighbors": 5},
        40,
    ),
    ("simple_spread", {"curriculum": True, "terminate_on_success": True}, 40),
    (
        "simple_tag",
        {
            "num_good": 2,
            "num_adversaries": 2,
            "num_obstacles": 3,
            "curriculum": True,
            "num_agent_neighbors": 2,
        },
        40,
    ),
    (
        "simple_tag",
        {"num_good": 1, "num_adversaries": 4, "num_obstacles": 0, "terminate_on_success": True},
        40,
    ),
    (
        "simple_world_comm",
        {"num_good": 3, "num_adversaries": 2, "num_obstacles": 2, "num_food": 1, "num_forests": 1},
        20,
    ),
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One thread, as the env runners use: on shared cores torch's default 2 threads crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _case_id(case) -> str:
    scenario, options, _ = case
    return scenario + "".join(f"-{k}={v}" for k, v in options.items())


# --- driving both envs with the same actions ---


def random_actions(
    rng: np.random.Generator, act_dims: list[int], n: int, continuous: bool
) -> list[np.ndarray]:
    """Per agent: (n,) ints, or (n, dim) float32 in [-1, 1] on a 2^-11 grid, a tenth of them all -1."""
    if not continuous:
        return [rng.integers(dim, size=n) for dim in act_dims]
    actions = []
    for dim in act_dims:
        a = (rng.integers(0, 2**12 + 1, size=(n, dim)) / 2**11 - 1).astype(np.float32)
        a[rng.random(n) < 0.1] = -1.0  # mpe2's [0, 1] zero vector: a silent message in simple_crypto
        actions.append(a)
    return actions


def batched_actions(actions: list[np.ndarray], act_dims: list[int], continuous: bool) -> list[torch.Tensor]:
    """The same actions as the batched env takes them: one-hot rows, or the wrapper's [0, 1] mapping."""
    if continuous:
        return [torch.from_numpy((np.clip(a, -1.0, 1.0) + 1.0) / 2.0).double() for a in actions]
    return [
        torch.nn.functional.one_hot(torch.from_numpy(a), d).double()
        for a, d in zip(actions, act_dims, strict=True)
    ]


def assert_close(what: str, expected, got, context: str) -> None:
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    assert expected.shape == got.shape, f"{context}: {what} shapes {expected.shape} vs {got.shape}"
    err = np.abs(expected - got)
    assert np.all(err <= ATOL), (
        f"{context}: {what} differ by up to {err.max():.3g} (env, entry {np.argwhere(err > ATOL)[0]})"
    )


def assert_observations_match(
    mpe_obs: list[list[np.ndarray]], batched_obs: list[torch.Tensor], context: str
) -> None:
    """mpe_obs[k][i]: env k, agent i; batched_obs[i]: (B, dim) for agent i (both sorted agent order)."""
    for i, obs in enumerate(batched_obs):
        assert_close(f"agent {i} observation", np.stack([o[i] for o in mpe_obs]), obs.numpy(), context)


def run_episodes(
    scenario: str, options: dict, continuous: bool, episodes: int, seed: int, compile_step: bool = False
) -> None:
    rng = np.random.default_rng(seed)
    mpe_envs = [make_env(scenario, continuous_actions=continuous, **options) for _ in range(BATCH)]
    env = make_batched_env(
        scenario,
        BATCH,
        dtype=torch.float64,
        continuous_actions=continuous,
        seed=seed,
        compile_step=compile_step,
        **options,
    )
    assert env.agents == mpe_envs[0].possible_agents
    layout = AgentLayout.from_env(mpe_envs[0])
    assert (env.obs_dims, env.act_dims) == (layout.obs_sizes, layout.act_sizes)
    nobody = torch.zeros(BATCH, dtype=torch.bool)
    for start in range(0, episodes, BATCH):
        mpe_obs = [e.reset_joint(seed=seed * 100_000 + start + k) for k, e in enumerate(mpe_envs)]
        for k, e in enumerate(mpe_envs):
            env.set_state_from_mpe(k, e.unwrapped_mpe)
        assert_observations_match(mpe_obs, env.reset_done(nobody), f"episodes {start}+, reset")
        for t in range(env.max_cycles):
            context = f"episodes {start}+, step {t + 1}"
            actions = random_actions(rng, env.act_dims, BATCH, continuous)
            results = [e.step_joint([a[k] for a in actions]) for k, e in enumerate(mpe_envs)]
            obs, rewards, terminated, truncated = env.step(batched_actions(actions, env.act_dims, continuous))
            assert_observations_match([r[0] for r in results], obs, context)
            mpe_rewards = [[e.unwrapped_mpe.rewards[a] for a in e.possible_agents] for e in mpe_envs]
            assert_close("rewards", mpe_rewards, rewards.numpy(), context)
            assert [r[2] for r in results] == terminated.tolist(), f"{context}: terminated"
            assert [r[3] for r in results] == truncated.tolist(), f"{context}: truncated"


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_batched_env_steps_exactly_like_mpe2(case, continuous):
    scenario, options, episodes = case
    run_episodes(scenario, options, continuous, episodes, seed=1 + continuous)


# The heaviest step (world_comm's forests and food), early termination, and a speaking agent.
COMPILED_CASES = [
    ("simple_world_comm", {}, True),
    ("simple_tag", {"terminate_on_success": True}, False),
    ("simple_speaker_listener", {}, False),
]


@pytest.mark.parametrize(
    "case", COMPILED_CASES, ids=[f"{c[0]}-{'cont' if c[2] else 'disc'}" for c in COMPILED_CASES]
)
def test_a_compiled_step_is_as_exact(case):
    """``env.compile``: the same contract through torch.compile (inductor fuses the ops, so rounding
    may differ from eager, never by more than the 1e-5 allowed against mpe2)."""
    scenario, options, continuous = case
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would test eager again
        run_episodes(scenario, options, continuous, episodes=2 * BATCH, seed=5, compile_step=True)


def test_a_failed_compile_steps_eagerly_with_one_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(
        RuntimeWarning, match="env.compile: torch.compile of the batched env step failed"
    ) as caught:
        run_episodes("simple_spread", {}, False, episodes=BATCH, seed=6, compile_step=True)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1


@pytest.mark.parametrize("scenario", ["simple_spread", "simple_tag"])
def test_success_terminates_like_mpe2(scenario):
    """Put every landmark under an agent (spread) or every prey on an adversary (tag), then step."""
    mpe = make_env(scenario, terminate_on_success=True)
    mpe.reset_joint(seed=3)
    world = mpe.world
    if scenario == "simple_spread":
        for agent, landmark in zip(world.agents, world.landmarks, strict=True):
            agent.state.p_pos = landmark.state.p_pos.copy()
    else:
        world.agents[-1].state.p_pos = world.agents[0].state.p_pos + 0.01
    env = make_batched_env(scenario, 1, dtype=torch.float64, terminate_on_success=True)
    env.set_state_from_mpe(0, mpe.unwrapped_mpe)
    no_op = [0] * len(env.agents)
    _, _, mpe_terminated, _ = mpe.step_joint(no_op)
    _, _, terminated, truncated = env.step(
        batched_actions([np.array([a]) for a in no_op], env.act_dims, False)
    )
    assert mpe_terminated and terminated.tolist() == [True] and truncated.tolist() == [False]


# --- reset distributions ---

# The random choices each reset_world makes, read from mpe2's world and from the batched scenario.
CHOICES = {
    "simple_adversary": (lambda w: [w.landmarks.index(w.agents[0].goal_a)], lambda s: s.goal[:, None]),
    "simple_crypto": (
        lambda w: [w.landmarks.index(w.agents[0].goal_a), int(np.argmax(w.agents[2].key))],
        lambda s: torch.stack([s.goal, s.key], -1),
    ),
    "simple_push": (lambda w: [w.landmarks.index(w.agents[0].goal_a)], lambda s: s.goal[:, None]),
    "simple_reference": (lambda w: [w.landmarks.index(a.goal_b) for a in w.agents], lambda s: s.goal),
    "simple_speaker_listener": (lambda w: [w.landmarks.index(w.agents[0].goal_b)], lambda s: s.goal[:, None]),
}


def assert_same_distribution(what: str, mpe: np.ndarray, batched: np.ndarray, ranges: bool = False) -> None:
    """Per column: means and variances within 5 standard errors; with ``ranges``, min and max within 0.02."""
    mpe, batched = mpe.astype(np.float64), batched.astype(np.float64)
    for name, a, b in (
        ("mean", mpe, batched),
        ("variance", (mpe - mpe.mean(0)) ** 2, (batched - batched.mean(0)) ** 2),
    ):
        diff = np.abs(a.mean(0) - b.mean(0))
        tolerance = 5 * np.sqrt(a.var(0) / len(a) + b.var(0) / len(b)) + 1e-6
        assert np.all(diff <= tolerance), f"{what} {name}: columns {np.flatnonzero(diff > tolerance)} differ"
    if ranges:
        for name, fn in (("min", np.min), ("max", np.max)):
            gap = np.abs(fn(mpe, 0) - fn(batched, 0))
            assert np.all(gap < 0.02), f"{what} {name}: {fn(mpe, 0)} vs {fn(batched, 0)}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_reset_draws_from_mpe2_distributions(scenario):
    resets = 600 if scenario == "simple_world_comm" else 2000
    mpe = make_env(scenario)
    mpe_positions, mpe_obs, mpe_choices = [], [], []
    for seed in range(resets):
        obs = mpe.reset_joint(seed=seed)
        mpe_obs.append(np.concatenate(obs))
        mpe_positions.append(np.concatenate([e.state.p_pos for e in mpe.world.entities]))
        if scenario in CHOICES:
            mpe_choices.append(CHOICES[scenario][0](mpe.world))
    env = make_batched_env(scenario, 4096, seed=0)
    env_obs = torch.cat(env.reset(), -1).numpy()
    assert_same_distribution(
        "positions", np.array(mpe_positions), env.world.pos.flatten(1).numpy(), ranges=True
    )
    assert_same_distribution("observations", np.array(mpe_obs), env_obs)
    if scenario in CHOICES:
        mpe_counts = np.array(mpe_choices)
        env_counts = CHOICES[scenario][1](env.scenario).numpy()
        for value in range(int(mpe_counts.max()) + 1):
            assert_same_distribution(
                f"choice == {value}", (mpe_counts == value) * 1.0, (env_counts == value) * 1.0
            )


def test_seed_fixes_the_resets():
    first, second, other = (make_batched_env("simple_tag", 8, seed=s).reset() for s in (7, 7, 8))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], other[0])


def test_velocity_first_moves_in_the_step_of_the_push_where_mpe2_waits_a_step():
    """From rest, mpe2's order (position from the old velocity) leaves the agent in place on the
    first step of a push; the original MPE's order moves it by the new velocity times dt."""
    moved = {}
    for velocity_first in (False, True):
        env = make_batched_env("simple", 2, seed=0)
        env.world.velocity_first = velocity_first
        start = env.world.agent_pos.clone()
        env.step([torch.eye(5)[torch.full((2,), 1)]])  # discrete 1: push along -x
        moved[velocity_first] = env.world.agent_pos - start
        velocity = env.world.vel.clone()
    assert torch.equal(moved[False], torch.zeros_like(moved[False]))
    torch.testing.assert_close(moved[True], velocity * env.world.dt)
    assert (moved[True][..., 0] < 0).all()


# --- API ---


def test_reset_done_resets_only_the_masked_envs():
    env = make_batched_env("simple_spread", 4, seed=0)
    for _ in range(3):
        before = env.step([torch.eye(d)[torch.zeros(4, dtype=torch.long) + 2] for d in env.act_dims])[0]
    mask = torch.tensor([True, False, True, False])
    after = env.reset_done(mask)
    assert env.steps.tolist() == [0, 3, 0, 3]
    assert torch.equal(after[0][~mask], before[0][~mask])
    assert not torch.equal(after[0][mask], before[0][mask])
    assert torch.all(after[0][mask, :2] == 0)  # velocities start at zero


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_runs_on_cpu_in_both_dtypes_and_truncates_at_max_cycles(dtype):
    env = make_batched_env("simple_world_comm", 8, device="cpu", dtype=dtype, seed=0, max_cycles=5)
    generator = torch.Generator().manual_seed(0)
    for t in range(5):
        actions = [torch.rand(8, d, generator=generator) for d in env.act_dims]
        obs, rewards, terminated, truncated = env.step(actions)
        assert [o.shape for o in obs] == [(8, d) for d in env.obs_dims]
        assert all(o.dtype == dtype and o.device.type == "cpu" for o in obs) and rewards.dtype == dtype
        assert rewards.shape == (8, len(env.agents)) and torch.isfinite(rewards).all()
        assert truncated.tolist() == [t == 4] * 8 and not terminated.any()


def test_spaces_match_the_mpe2_wrapper():
    for scenario in SCENARIOS:
        for continuous in (False, True):
            mpe = make_env(scenario, continuous_actions=continuous)
            layout = AgentLayout.from_env(mpe)
            env = make_batched_env(scenario, 2, continuous_actions=continuous)
            assert (env.agents, env.obs_dims, env.act_dims) == (
                list(layout.agents),
                layout.obs_sizes,
                layout.act_sizes,
            )
            assert env.discrete == [not continuous] * len(env.agents) and env.max_cycles == mpe.max_cycles


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_scenario_agents_are_the_mpe2_agents_without_building_an_env(case):
    scenario, options, _ = case
    assert scenario_agents(scenario, **options) == sorted(make_env(scenario, **options).possible_agents)


def test_actions_of_the_wrong_shape_are_refused():
    env = make_batched_env("simple_speaker_listener", 3)
    with pytest.raises(ValueError, match="listener_0"):
        env.step([torch.zeros(3, 5), torch.zeros(3, 5)])


# --- options ---


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_options_are_mpe2_constructor_arguments(scenario):
    assert sorted(scenario_options(scenario)) == sorted(MPE_SCENARIOS[scenario].options)


@pytest.mark.parametrize(
    ("scenario", "options", "field", "message"),
    [
        ("simple_spread", {"render_mode": "human"}, "env.render_mode", "not supported by the batched envs"),
        (
            "simple_spread",
            {"benchmark_data": True},
            "env.benchmark_data",
            "not supported by the batched envs",
        ),
        ("simple_tag", {"N": 3}, "env.N", "unknown option for simple_tag"),
        ("simple_spread", {"N": 0}, "env.N", "must be a positive integer"),
        ("simple_reference", {"local_ratio": 2}, "env.local_ratio", "must be a number in [0, 1]"),
        ("simple_world_comm", {"num_food": 0}, "env.num_food", "needs food"),
        ("simple_tag", {"curriculum": "yes"}, "env.curriculum", "must be true or false"),
        ("simple_volleyball", {}, "scenario", "unknown scenario"),
    ],
)
def test_unsupported_options_raise_a_config_error_naming_them(scenario, options, field, message):
    with pytest.raises(ConfigError) as raised:
        make_batched_env(scenario, 2, **options)
    assert any(f == field and message in m for f, m in raised.value.problems), raised.value.problems


def test_dynamic_rescaling_is_accepted_because_it_only_affects_rendering():
    env = make_batched_env("simple", 2, dynamic_rescaling=False)
    assert env.obs_dims == [4]


@pytest.mark.parametrize("scenario", ["simple_spread", "simple_tag"])
def test_mpe2_curriculum_stays_at_stage_0_as_the_batched_envs_assume(scenario):
    """mpe2 1.1.1's ``set_curriculum_stage`` is a no-op (see batched/scenario.py). Should a later
    mpe2 make stages work, this fails, and the batched spread / tag must learn the later stages."""
    mpe = make_env(scenario, curriculum=True)
    mpe.unwrapped_mpe.set_curriculum_stage(1)
    mpe.unwrapped_mpe.advance_curriculum()
    mpe.reset_joint(seed=0)
    assert mpe.unwrapped_mpe.curriculum_stage == 0
    if scenario == "simple_tag":
        assert (mpe.world.agents[-1].accel, mpe.world.agents[-1].max_speed) == (2.0, 0.65)
