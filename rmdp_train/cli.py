"""Command-line checks shared by the solvers: bad input ends in one line on stderr, no traceback."""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
from typing import Any, NoReturn

import gymnasium as gym

from rmdp_envs import check_k, make
from rmdp_envs.core import check_seed, init_keyword_chain
from rmdp_envs.registration import registered_id


def fail(message: str) -> NoReturn:
    """Exit with status 2 and ``error: message`` as the only line on stderr."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def env_kwargs_from(n_agents: int | None = None, population: str | None = None,
                    population_seed: int | None = None, extra_json: str | None = None) -> dict[str, Any]:
    """Environment keyword arguments from the solvers' flags (``None`` = the environment's default).

    ``extra_json`` (``--env-kwargs``) is a JSON object of any further keyword arguments; the
    dedicated flags win over the same keys in it.
    """
    kwargs: dict[str, Any] = {}
    if extra_json:
        try:
            kwargs = json.loads(extra_json)
        except json.JSONDecodeError as e:
            fail(f"--env-kwargs is not valid JSON ({e.msg} at character {e.pos}): {extra_json!r}")
        if not isinstance(kwargs, dict):
            fail(f"--env-kwargs must be a JSON object, got {extra_json!r}")
    if n_agents is not None:
        kwargs["n_agents"] = n_agents
    if population is not None:
        kwargs["population"] = population
    if population_seed is not None:
        kwargs["population_seed"] = population_seed
    return kwargs


#: The solver flags that become environment keyword arguments (``env_kwargs_from``).
_ARGUMENT_FLAGS = {"n_agents": "--n-agents", "population": "--population", "population_seed": "--population-seed"}


def _entry_class(env_id: str):
    """What a registered id's entry point names (a class, or a factory function)."""
    entry_point = gym.spec(env_id).entry_point
    return gym.envs.registration.load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point


def _unaccepted_argument(env_id: str, name: str) -> str:
    """The error for an environment argument the env does not take: which flag gave it, and what the env takes."""
    flag = _ARGUMENT_FLAGS.get(name)
    given = f"the argument {name!r} ({flag or '--env-kwargs'})"
    env_class = _entry_class(env_id)
    fixed = " (its users are fixed)" if name == "n_agents" else ""
    return f"{env_id} does not take {given}{fixed}; it takes: {', '.join(_keyword_arguments(env_class))}"


#: Keywords ``gym.make`` takes itself, whatever the env's ``__init__``.
_MAKE_KEYWORDS = {"max_episode_steps", "render_mode", "disable_env_checker"}


def check_env_arguments(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Fail (one line) on an env id that is no registered r-MDP, or an argument its class cannot take, without making
    the env: run before the checks that need the env's size (a memory estimate for 10^9 users named an env that does
    not exist, or that has no users to set, as the problem)."""
    try:
        env_id = registered_id(env_id)
    except ValueError as e:
        fail(e)
    env_class = _entry_class(env_id)
    if not isinstance(env_class, type):
        return  # a factory function: what it takes is its own business (gym.make will say)
    chain = init_keyword_chain(env_class)
    if not chain or any(p.kind == p.VAR_KEYWORD for p in inspect.signature(chain[-1][0].__init__).parameters.values()):
        return
    accepted = {name for _, names in chain for name in names} | _MAKE_KEYWORDS
    for name in env_kwargs:
        if name not in accepted:
            fail(_unaccepted_argument(env_id, name))


def _keyword_arguments(env_class) -> list[str]:
    """What an environment class takes: its ``__init__``'s keyword arguments, the base class its ``**kwargs`` go
    to (the MuJoCo tasks pass theirs on to Gymnasium's), and ``gym.make``'s ``max_episode_steps``."""
    chain = init_keyword_chain(env_class)
    names = list(chain[0][1])
    if len(chain) > 1:
        names.append(f"those of {chain[1][0].__module__}.{chain[1][0].__qualname__}")
    return names + ["max_episode_steps"]


def check_ranges(positive: dict[str, float | None] | None = None, non_negative: dict[str, float | None] | None = None,
                 unit_interval: dict[str, float | None] | None = None, seeds: dict[str, int | None] | None = None,
                 finite: dict[str, float | None] | None = None) -> None:
    """Fail (one line, exit status 2) on the first named flag outside its range: a finite ``> 0``, a finite ``>= 0``,
    ``[0, 1]``, any finite number, or a seed :func:`rmdp_envs.core.check_seed` refuses. ``None`` is a flag left unset
    (its default applies) and passes; NaN and infinities fail (an infinite learning rate passed ``> 0`` and then
    failed, with a traceback, to be written to ``args.json``)."""
    def flag(name: str) -> str:
        return f"--{name.replace('_', '-')}"

    for name, value in (positive or {}).items():
        if value is not None and not (value > 0 and math.isfinite(value)):
            fail(f"{flag(name)} must be a finite number > 0, got {value}")
    for name, value in (non_negative or {}).items():
        if value is not None and not (value >= 0 and math.isfinite(value)):
            fail(f"{flag(name)} must be a finite number >= 0, got {value}")
    for name, value in (finite or {}).items():
        if value is not None and not math.isfinite(value):
            fail(f"{flag(name)} must be a finite number, got {value}")
    for name, value in (unit_interval or {}).items():
        if value is not None and not 0 <= value <= 1:
            fail(f"{flag(name)} must lie in [0, 1], got {value}")
    for name, value in (seeds or {}).items():
        if value is not None:
            try:
                check_seed(value, flag(name))
            except ValueError as e:
                fail(e)


def check_run_args(env_id: str, env_kwargs: dict[str, Any], k: int, total_timesteps: int,
                   positive: dict[str, float] | None = None, non_negative: dict[str, float] | None = None) -> gym.Env:
    """Validate a solver's flags; returns a probe instance of the environment (close it after use).

    Fails (one line, exit status 2) on an unknown env id, environment arguments the env rejects
    (a ``max_episode_steps`` below 1 among them: Gymnasium reads a negative one as no time limit),
    ``k`` outside ``[1, n]``, a budget ``< 1`` and any named flag that must be positive or ``>= 0``.
    """
    if total_timesteps < 1:
        fail(f"--total-timesteps must be >= 1, got {total_timesteps}")
    check_ranges(positive, non_negative)
    steps = env_kwargs.get("max_episode_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        fail(f"max_episode_steps (--env-kwargs) must be an integer >= 1, got {steps!r}")
    try:
        env = make(env_id, **env_kwargs)
    except (ValueError, TypeError, gym.error.Error) as e:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if unknown:
            fail(_unaccepted_argument(env_id, unknown.group(1)))
        fail(f"cannot make {env_id!r} with {env_kwargs}: {e}" if env_kwargs and "unknown env id" not in str(e) else e)
    try:
        check_k(k, env.unwrapped.population.n)
    except ValueError as e:
        env.close()
        fail(f"--k: {e}")
    return env
