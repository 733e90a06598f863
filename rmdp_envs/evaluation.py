"""Social-welfare evaluation of k policies on fixed seeds (the assessment step of the pipeline)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode

from rmdp_envs.core import check_assignment
from rmdp_envs.vector import make_vector_env

#: Most sub-envs stepped at once by :func:`evaluate`; more episodes run in several rounds.
MAX_PARALLEL_COPIES = 256


@dataclass(frozen=True)
class EvalResult:
    """Returns of every user under every policy.

    Attributes:
        returns: shape ``(k, episodes, n)``: undiscounted return of user ``i`` in episode ``e``
            of policy ``j``.
        lengths: shape ``(k, episodes)``: episode lengths.
        seeds: the reset seed of each episode (shared by all policies).
    """

    returns: np.ndarray
    lengths: np.ndarray
    seeds: tuple[int, ...]

    @property
    def utility(self) -> np.ndarray:
        """``(k, n)``: mean undiscounted return of user ``i`` under policy ``j``."""
        return self.returns.mean(axis=1)

    @property
    def utility_sem(self) -> np.ndarray:
        """``(k, n)``: standard error of :attr:`utility` over episodes (0 for one episode)."""
        e = self.returns.shape[1]
        return self.returns.std(axis=1, ddof=1) / np.sqrt(e) if e > 1 else np.zeros(self.utility.shape)

    @property
    def k(self) -> int:
        return self.returns.shape[0]

    @property
    def n(self) -> int:
        return self.returns.shape[2]

    def welfare(self, assignment: Sequence[int]) -> float:
        """Social welfare: mean over users of the utility of their assigned policy."""
        return float(self.user_utilities(assignment).mean())

    def user_utilities(self, assignment: Sequence[int]) -> np.ndarray:
        """``(n,)``: each user's utility under its assigned policy."""
        a = check_assignment(assignment, self.k, self.n)
        return self.utility[a, np.arange(self.n)]

    @property
    def best_assignment(self) -> np.ndarray:
        """Each user takes the policy best for it (the deployment step); ties go to the lowest index."""
        return self.utility.argmax(axis=0)

    @property
    def best_welfare(self) -> float:
        return self.welfare(self.best_assignment)

    def to_dict(self) -> dict[str, Any]:
        return {"utility": self.utility.tolist(), "best_assignment": self.best_assignment.tolist(),
                "best_welfare": self.best_welfare, "episodes": int(self.returns.shape[1]),
                "seeds": list(self.seeds), "mean_length": float(self.lengths.mean())}


def evaluate(env_id: str, policy_fn: Callable[[np.ndarray], Any], k: int, episodes: int = 10,
             seed: int = 0, env_kwargs: dict | None = None) -> EvalResult:
    """Roll out ``k`` policies together for ``episodes`` episodes each on fixed seeds.

    ``policy_fn(obs)`` receives observations of shape ``(k, *obs_shape)`` (row ``j`` belongs to
    policy ``j``) and returns ``k`` actions. A ``policy_fn`` with attribute ``batched = True``
    instead receives ``(k, m, *obs_shape)`` and returns ``(k, m, *action_shape)``: one call for
    ``m`` copies per policy. Episode ``e`` of every policy starts from reset seed ``seed + e``, so
    policies are compared on the same starts.
    """
    if int(episodes) != episodes or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes}")
    env_kwargs = dict(env_kwargs or {})
    batched = bool(getattr(policy_fn, "batched", False))
    returns, lengths = [], []
    per_round = max(1, min(episodes, MAX_PARALLEL_COPIES // max(int(k), 1)))
    env = None
    for start in range(0, episodes, per_round):
        m = min(per_round, episodes - start)
        if env is None or env.copies_per_policy != m:
            env = make_vector_env(env_id, k, m, env_kwargs, autoreset_mode=AutoresetMode.DISABLED, rewards="statistic")
        r, l = _rollout(env, policy_fn, k, m, [seed + start + c for c in range(m)], batched)
        returns.append(r)
        lengths.append(l)
    env.close()
    return EvalResult(returns=np.concatenate(returns, axis=1), lengths=np.concatenate(lengths, axis=1),
                      seeds=tuple(range(seed, seed + episodes)))


#: How long an evaluation episode of an env with neither a time limit nor a ``horizon`` may run before it is refused.
UNBOUNDED_EPISODE_STEPS = 100_000


def _rollout(env, policy_fn, k: int, m: int, seeds: list[int], batched: bool):
    """One episode on each of the k*m copies; returns ((k, m, n) returns, (k, m) lengths).

    The env returns reward statistics (:mod:`rmdp_envs.rewards`): the users' returns are built
    once per episode, not summed per step, so evaluating 10^6 users stays cheap.
    """
    action_shape = tuple(env.single_action_space.shape)
    obs, _ = env.reset(seed=[s for _ in range(k) for s in seeds])
    episode_returns = env.user_rewards.episode_returns(env.num_envs)
    lengths = np.zeros(env.num_envs, dtype=np.int64)
    first = env.envs[0]
    horizon = first.spec.max_episode_steps if first.spec is not None else None
    horizon = horizon or getattr(first.unwrapped, "horizon", None)
    for step in itertools.count():
        if env.all_done:
            break
        if step >= (horizon or UNBOUNDED_EPISODE_STEPS):  # only an env without a time limit gets here
            raise RuntimeError(f"{first.spec.id if first.spec else 'the env'}: episodes still running after {step} "
                               "steps and no time limit: register it with max_episode_steps (evaluation runs every "
                               "episode to its end)")
        active = ~env.done
        grouped = obs.reshape((k, m) + obs.shape[1:])
        if batched:
            actions = _check_actions(policy_fn(grouped), (k, m) + action_shape)
        else:
            actions = np.stack([_check_actions(policy_fn(grouped[:, c]), (k,) + action_shape)
                                for c in range(m)], axis=1)
        obs, stats, _, _, infos = env.step(actions.reshape((k * m,) + action_shape))
        episode_returns.add(stats, active)
        if "_episode" in infos:
            lengths[infos["_episode"]] = infos["episode"]["l"][infos["_episode"]]
    return episode_returns.returns().reshape(k, m, -1), lengths.reshape(k, m)


def _check_actions(actions, shape: tuple[int, ...]) -> np.ndarray:
    actions = np.asarray(actions)
    if actions.shape != shape:
        raise ValueError(f"policy_fn must return actions of shape {shape} (one per policy), got {actions.shape}")
    return actions
