"""What every r-MDP environment shares: a population and a vector reward space."""

from __future__ import annotations

import inspect
import functools
import weakref
from typing import Any, Callable, Hashable, Literal, get_args

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rmdp_envs.population import Population


#: What ``step`` returns as the reward while an env's ``reward_vector`` is off: a vector env in statistic mode
#: (:mod:`rmdp_envs.rewards`) reads the users' rewards from ``info`` and skips the O(n) vector.
NO_REWARD_VECTOR = np.zeros(0, dtype=np.float32)
NO_REWARD_VECTOR.setflags(write=False)


@functools.lru_cache(maxsize=8)
def make_reward_space(n: int, low: float, high: float) -> spaces.Box:
    """The Box that every reward vector of an ``n``-user r-MDP lies in (MO-Gymnasium style).

    One Box per process for equal arguments: its bounds are four arrays of ``n`` (10 bytes a user), and
    a vector env's copies and an evaluation's (hundreds at once) would each hold their own; seeding one
    copy's ``reward_space`` seeds them all.
    """
    return spaces.Box(low=np.float32(low), high=np.float32(high), shape=(n,), dtype=np.float32)


#: (id of a live object, key) -> (a weak reference to the object, what was derived from it).
_DERIVED: dict[tuple[int, Hashable], tuple[weakref.ref, Any]] = {}


def derived(owner: Any, key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()``, made once per live ``owner`` object and ``key`` in this process.

    A process's env copies share one population (:func:`resolve_population`) or reward table, and
    what each copy derives from it (sorted targets, table bounds) is the same too: at n = 10^6 users
    that is megabytes and a sort per copy, hundreds of copies in an evaluation. The entry leaves with
    its owner.
    """
    slot = (id(owner), key)
    known = _DERIVED.get(slot)
    if known is not None and known[0]() is owner:
        return known[1]
    value = build()
    # the callback holds the dict itself: at interpreter exit the module's globals may already be gone
    _DERIVED[slot] = (weakref.ref(owner, lambda _, slot=slot, table=_DERIVED: table.pop(slot, None)), value)
    return value


def resolve_population(
    population: str | Population | dict[str, Any],
    n_agents: int,
    population_seed: int | None,
    target_range: tuple[float, float],
) -> Population:
    """Turn an environment's population arguments into a :class:`Population`.

    ``population`` is a sampler name (sampled with ``n_agents``, ``population_seed`` and
    ``target_range``), a ready :class:`Population`, or its ``to_dict()`` form.
    """
    if isinstance(population, Population):
        return population
    if isinstance(population, dict):
        return Population.from_dict(population)
    if not isinstance(population, str):
        raise ValueError(f"population must be a sampler name, a Population or its dict, got {type(population).__name__}")
    low, high = target_interval(target_range)
    if population_seed is None:  # a fresh draw each time (a vector env refuses copies that differ)
        return Population.sample(population, n_agents, low, high, seed=None)
    return _sampled_population(population, n_agents, population_seed, low, high)


def target_interval(target_range) -> tuple[float, float]:
    """``target_range`` as a finite ``(low, high)`` pair with ``low < high``, or one clear error."""
    try:
        low, high = (float(v) for v in target_range)
    except (TypeError, ValueError):
        raise ValueError(f"target_range must be a pair (low, high), got {target_range!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"target_range needs finite low < high, got {target_range!r}")
    return low, high


def resolve_target_population(
    population: str | Population | dict[str, Any],
    n_agents: int,
    population_seed: int | None,
    target_range: tuple[float, float] | None,
    default_range: tuple[float, float],
) -> tuple[Population, tuple[float, float]]:
    """A target task's population of one target per user, and the interval whose width sets its reward window.

    The interval is ``target_range`` where given, else the task's ``default_range``. A ready population that records
    another interval of its own (``meta`` ``low``/``high``, as :meth:`Population.sample` does) is refused unless
    ``target_range`` is given: the window would otherwise follow the default and not the population, silently.
    """
    interval = target_interval(default_range if target_range is None else target_range)
    resolved = resolve_population(population, n_agents, population_seed, interval)
    if resolved.params.ndim != 2 or resolved.params.shape[1] != 1:
        raise ValueError(f"this task needs one target per user, got params of shape {resolved.params.shape}")
    own = (resolved.meta.get("low"), resolved.meta.get("high"))
    if target_range is None and None not in own and tuple(float(v) for v in own) != interval:
        low, high = interval
        raise ValueError(f"the population's targets were drawn over ({own[0]:g}, {own[1]:g}), but the reward window "
                         f"follows target_range, by default ({low:g}, {high:g}) (l = (high - low) / 20 = "
                         f"{(high - low) / 20:g}); pass target_range= to say which interval sets it")
    return resolved, interval


@functools.lru_cache(maxsize=4, typed=True)  # typed: True is not 1 (n_agents=True must reach the sampler's check)
def _sampled_population(sampler: str, n_agents: int, seed: int, low: float, high: float) -> Population:
    """A seeded sampler's population, drawn once per process for equal arguments: every env copy (and
    :func:`derived` from it, once) shares it. Its parameters are read-only, so sharing changes no number."""
    return Population.sample(sampler, n_agents, low, high, seed=seed)


#: ``metadata["rmdp_evaluation"]``: how exactly re-evaluating the same policies on the same seeds repeats.
#: ``"exact"``: integer or tabular dynamics, the same numbers on every machine up to float summation;
#: ``"chaotic"``: continuous physics, where a last-bit difference in a policy's output can change an
#: action and grow over a long episode (MuJoCo). The leaderboard picks its tolerance by this fact.
EVALUATION_CLASSES = ("exact", "chaotic")
#: ``metadata["rmdp_family"]``: the kind of task, which picks the solvers' default hyperparameters.
FAMILIES = ("gridworld", "tabular", "classic_control", "mujoco")


def upper_welfare(env) -> dict[str, Any]:
    """The full-personalization welfare of an r-MDP (every user its own optimal policy), as the env states it.

    An env that knows it exactly or in closed form says so with a ``full_personalization_welfare()``
    method; otherwise the bound is its per-step reward bound (``reward_space.high``) times its
    horizon (``spec.max_episode_steps``). Returns ``{"welfare": float | None, "source": str}``.
    """
    base = env.unwrapped
    own = getattr(base, "full_personalization_welfare", None)
    if own is not None:
        return own()
    # the registered horizon (the unwrapped env's own spec copy has max_episode_steps stripped)
    spec = gym.spec(base.spec.id) if base.spec is not None else None
    if spec is not None and spec.max_episode_steps and hasattr(base, "reward_space"):
        # shortest decimal of the float32 bound: 0.1, not 0.100000001 (else 100.000001 below)
        per_step = float(np.format_float_positional(np.max(base.reward_space.high)))
        bound = round(per_step * spec.max_episode_steps, 6)
        return {"welfare": bound, "source": f"reward bound: {per_step:.3g} per step x {spec.max_episode_steps} steps"}
    return {"welfare": None, "source": "unknown"}


def init_keyword_chain(cls: type) -> list[tuple[type, list[str]]]:
    """The ``__init__`` methods a keyword given to ``cls(...)`` can reach, in MRO order: each class defining one and
    its keyword names, up to the first without ``**kwargs`` (e.g. a speed task's mixin, then its Gymnasium robot,
    then ``MujocoEnv``). What an env takes, for messages that name it."""
    chain = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        chain.append((klass, [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]))
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return chain


def check_render_mode(render_mode: str | None, metadata: dict[str, Any], name: str) -> None:
    """Refuse a render mode the env does not list (Gymnasium's passive checker would, but rmdp's registrations turn
    it off: it rejects reward vectors), at construction rather than at the first ``render()``."""
    modes = metadata.get("render_modes", [])
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"{name} renders in {', '.join(map(repr, modes)) or 'no mode'}; got render_mode={render_mode!r}")


#: The seeds numpy and Gymnasium both take: ``np.random.seed`` stops at 2**32 - 1, ``reset(seed=...)`` at 0.
SEED_RANGE = (0, 2**32 - 1)


def check_seed(seed, name: str = "seed") -> int:
    """Validate a training or reset seed: an integer in :data:`SEED_RANGE` (``name`` says which, in the error)."""
    low, high = SEED_RANGE
    if isinstance(seed, bool) or int(seed) != seed or not low <= seed <= high:
        raise ValueError(f"{name} must be an integer in [{low}, 2**32 - 1], got {seed!r}")
    return int(seed)


def check_k(k: int, n: int) -> int:
    """Validate a budget of ``k`` policies for ``n`` users: ``1 <= k <= n``."""
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, n] = [1, {n}], got k={k}")
    return int(k)


def check_assignment(assignment, k: int, n: int) -> np.ndarray:
    """Validate an assignment of ``n`` users to ``k`` policies; returns it as an int array."""
    a = np.asarray(assignment)
    if a.shape != (n,):
        raise ValueError(f"assignment must have length n={n} (one policy index per user), got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError("assignment must contain integer policy indices")
        a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= k):
        raise ValueError(f"assignment indices must lie in [0, k) = [0, {k}), got min {a.min()} max {a.max()}")
    return a.astype(np.int64)


def round_robin(n: int, k: int) -> np.ndarray:
    """The default assignment: user ``i`` to policy ``i mod k``."""
    return np.arange(n) % k


#: What the E-step does with a policy that all its users leave (``em_ppo.py --empty-policy``, whose choices it spells).
EmptyPolicyRule = Literal["reinstate", "split"]
EMPTY_POLICY_RULES: tuple[str, ...] = get_args(EmptyPolicyRule)


def e_step(utility: np.ndarray, assignment: np.ndarray, tol: float = 0.0, empty: str = "reinstate") -> np.ndarray:
    """The E-step of EM (one rule for the deep and the exact solver): each user to its best policy.

    ``utility[p, i]`` is user ``i``'s (estimated) value under policy ``p``. The tie rule: a user
    moves to its best policy (the lowest index among equals) only when that beats its current
    policy by more than ``tol``; otherwise it stays. Staying on ties is what makes EM stop instead
    of cycling between equally good policies (the exact solver passes a ``tol`` of float noise).
    ``empty="reinstate"``, the paper's rule: no policy empties; a policy left without users takes
    back, among its previous users whose new policy keeps another user, the one whose move gained
    least (if there is none, any user of a policy with more than one). ``empty="split"`` leaves such
    a policy empty, for :func:`split_largest_groups` to re-seed.
    """
    if empty not in EMPTY_POLICY_RULES:
        raise ValueError(f"empty must be one of {EMPTY_POLICY_RULES}, got {empty!r}")
    k, n = utility.shape
    users = np.arange(n)
    best = utility.argmax(axis=0)
    new = np.where(utility[best, users] > utility[assignment, users] + tol, best, assignment)
    if empty == "split":
        return new
    for p in range(k):
        if (new == p).any():
            continue
        sizes = np.bincount(new, minlength=k)
        candidates = np.flatnonzero((assignment == p) & (sizes[new] > 1))
        if candidates.size == 0:
            candidates = np.flatnonzero(sizes[new] > 1)
        loss = utility[new[candidates], candidates] - utility[p, candidates]
        new[candidates[np.argmin(loss)]] = p
    return new


def split_largest_groups(utility: np.ndarray, assignment: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Re-seed every policy without users by splitting the largest group (EM's ``--empty-policy split``).

    The paper's rule keeps a policy alive by handing it back one user, and that user may gain nothing
    from it: on HalfCheetahSpeed a policy left with one fast-target user never reached that speed, so
    the user stayed on a policy worth 0 to it for the rest of the run (README "Leaderboard"). Here the
    empty policy ``p`` instead takes the half (rounded down) of the largest group that the group's
    policy ``q`` serves worst (lowest ``utility[q]``, ties by user index; the lowest ``q`` among equal
    sizes). The solver makes ``p`` a copy of ``q``, so both halves start from a policy that serves
    them and each specializes on its own half. Returns the new assignment and the ``(p, q)`` pairs in
    the order they were made (empty policies in index order; a later one may split an earlier half).
    """
    k = utility.shape[0]
    new = np.array(assignment, dtype=np.int64, copy=True)
    splits = []
    for p in range(k):
        sizes = np.bincount(new, minlength=k)
        if sizes[p]:
            continue
        q = int(sizes.argmax())
        if sizes[q] < 2:
            raise ValueError(f"policy {p} has no users and no group has two to split (n = {len(new)} < k = {k})")
        group = np.flatnonzero(new == q)
        worst = group[np.argsort(utility[q, group], kind="stable")[: sizes[q] // 2]]
        new[worst] = p
        splits.append((p, q))
    return new, splits
