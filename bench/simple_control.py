"""A single-file, Ray-free control on mpe2 ``simple`` (one agent, one landmark, 25-step episodes).

It trains with ``ray_maddpg.maddpg.core`` on ``MPEMultiAgentEnv`` directly, CleanRL-style, so
one update can be read top to bottom and compared with the RLlib learner's (which
tests/algorithm/test_action_rules.py checks against the same update written by hand). It is
the control behind the ``simple`` rows of docs/results.md: which learning rates, update
rates and actor objectives put the greedy agent on its landmark.

Actors (``--actor``):
  straight_through  one-hots everywhere, straight-through Gumbel-softmax in the actor loss
  mixed             one-hots executed, soft Gumbel-softmax in the target and actor loss
  expected          one-hots everywhere; actor loss -sum_k pi_k(o) Q(o, e_k), the exact
                    expectation over the agent's own discrete actions
  tanh              continuous actions, tanh + Gaussian noise 0.1
  dqn               no actor: a Q-network over the 5 actions, epsilon-greedy 0.1, double-Q
                    target (the control for the critic alone)

Evaluation: the greedy policy (and its Polyak-averaged target copy) on 100 fixed seeds; the
figure is the distance to the landmark at the last step, and the share of episodes below 0.1.

    .venv/bin/python bench/simple_control.py --seed 0 --actor straight_through --lr 1e-2 --every 100
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ray_maddpg.envs.mpe import make_env
from ray_maddpg.maddpg import core

OBS, ACT = 4, 5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300_000, help="env steps")
    p.add_argument(
        "--actor",
        default="straight_through",
        choices=("straight_through", "mixed", "expected", "tanh", "dqn"),
    )
    p.add_argument("--lr", type=float, default=1e-2, help="critic (and actor) Adam learning rate")
    p.add_argument("--actor-lr", type=float, default=None, help="actor learning rate (default: --lr)")
    p.add_argument("--every", type=int, default=100, help="env steps per update")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--start", type=int, default=25_600, help="env steps before learning starts")
    p.add_argument(
        "--simultaneous", action="store_true", help="actor gradient from the critic before its step"
    )
    p.add_argument("--eval-every", type=int, default=50_000)
    return p.parse_args()


class Control:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        self.env = make_env("simple", max_cycles=25, continuous_actions=args.actor == "tanh")
        rule = {"expected": "straight_through", "dqn": "straight_through"}.get(args.actor, args.actor)
        self.rule = core.ActionRule(rule)
        self.actor = core.MLP(OBS, ACT)  # the Q-network in dqn mode
        self.critic = self.actor if args.actor == "dqn" else core.MLP(OBS + ACT, 1)
        self.target_actor, self.target_critic = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=args.actor_lr or args.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=args.lr)
        n = args.steps
        self.obs, self.next_obs = np.zeros((n, OBS), np.float32), np.zeros((n, OBS), np.float32)
        self.actions, self.rewards = np.zeros((n, ACT), np.float32), np.zeros(n, np.float32)
        self.size = 0

    # --- acting ---

    def explore(self, obs: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            out = self.actor(torch.from_numpy(obs))
        if self.args.actor == "dqn":
            k = int(out.argmax()) if self.rng.random() > 0.1 else int(self.rng.integers(ACT))
            return F.one_hot(torch.tensor(k), ACT).float()
        return self.rule.explore(out)

    def greedy(self, net: nn.Module, obs: np.ndarray):
        with torch.no_grad():
            action = self.rule.greedy(net(torch.from_numpy(obs)))
        return self.rule.to_env(action).numpy() if self.rule.kind == "tanh" else int(action.argmax())

    def evaluate(self, net: nn.Module, episodes: int = 100) -> tuple[float, float]:
        distances = []
        for episode in range(episodes):
            obs = self.env.reset_joint(seed=10_000 + episode)[0]
            for _ in range(25):
                obs = self.env.step_joint([self.greedy(net, obs)])[0][0]
            distances.append(float(np.linalg.norm(obs[2:4])))  # obs = [velocity, landmark - position]
        distances = np.array(distances)
        return round(float(distances.mean()), 4), round(float((distances < 0.1).mean()), 2)

    # --- learning ---

    def q(self, net: nn.Module, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([obs, action], -1)).squeeze(-1)

    def update(self) -> None:
        a = self.args
        idx = self.rng.integers(0, self.size, a.batch)
        obs, action, reward, next_obs = (
            torch.from_numpy(x[idx]) for x in (self.obs, self.actions, self.rewards, self.next_obs)
        )
        if a.actor == "dqn":
            with torch.no_grad():
                best = self.actor(next_obs).argmax(-1, keepdim=True)
                target = reward + 0.95 * self.target_actor(next_obs).gather(-1, best).squeeze(-1)
            self._step(self.critic_opt, F.mse_loss((self.actor(obs) * action).sum(-1), target), self.critic)
            core.soft_update(self.target_actor, self.actor, 0.01)
            return
        with torch.no_grad():
            target = reward + 0.95 * self.q(
                self.target_critic, next_obs, self.rule.target(self.target_actor(next_obs))
            )
        critic_loss = F.mse_loss(self.q(self.critic, obs, action), target)
        if a.simultaneous:
            actor_loss = self.actor_loss(obs)
            actor_grads = torch.autograd.grad(actor_loss, list(self.actor.parameters()))
            self._step(self.critic_opt, critic_loss, self.critic)
            for p, g in zip(self.actor.parameters(), actor_grads, strict=True):
                p.grad = g
            nn.utils.clip_grad_norm_(self.actor.parameters(), 0.5)
            self.actor_opt.step()
        else:
            self._step(self.critic_opt, critic_loss, self.critic)
            self._step(self.actor_opt, self.actor_loss(obs), self.actor)
        core.soft_update(self.target_actor, self.actor, 0.01)
        core.soft_update(self.target_critic, self.critic, 0.01)

    def actor_loss(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.actor(obs)
        if self.args.actor == "expected":
            every_action = torch.eye(ACT).expand(len(obs), ACT, ACT)
            q_each = self.q(self.critic, obs.unsqueeze(1).expand(-1, ACT, -1), every_action)
            q_pi = (F.softmax(out, -1) * q_each).sum(-1)
        else:
            q_pi = self.q(self.critic, obs, self.rule.policy(out))
        return core.actor_loss(q_pi, out, 1e-3)

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module) -> None:
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        optimizer.step()

    # --- the loop ---

    def run(self) -> dict:
        a, start = self.args, time.perf_counter()
        obs = self.env.reset_joint(seed=int(self.rng.integers(2**31)))[0]
        curve = []
        for step in range(1, a.steps + 1):
            action = self.explore(obs)
            next_obs, reward, _, truncated = self.env.step_joint([self.rule.to_env(action)])
            i = self.size
            self.obs[i], self.actions[i], self.rewards[i], self.next_obs[i] = (
                obs,
                action.numpy(),
                reward[0],
                next_obs[0],
            )
            self.size += 1
            obs = self.env.reset_joint(seed=int(self.rng.integers(2**31)))[0] if truncated else next_obs[0]
            if step >= a.start and step % a.every == 0:
                self.update()
            if step % a.eval_every == 0 or step == a.steps:
                point = {
                    "step": step,
                    "greedy": self.evaluate(self.actor),
                    "target": self.evaluate(self.target_actor),
                }
                point["seconds"] = round(time.perf_counter() - start)
                curve.append(point)
                print(json.dumps(point), flush=True)
        return {"settings": vars(a), "curve": curve}


if __name__ == "__main__":
    torch.set_num_threads(1)
    result = Control(parse_args()).run()
    print(json.dumps(result))
