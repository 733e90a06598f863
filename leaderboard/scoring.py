"""Scoring saved policies under a protocol: the one place that turns policies into board numbers.

:func:`score` serves ``submit`` (scoring a new run), ``verify`` (re-scoring a stored run under
the protocol it was stored with) and ``reproduce`` (scoring retrained policies).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def score(env_id: str, env_kwargs: dict, policies, k: int, protocol: dict[str, Any], own_assignment) -> dict[str, Any]:
    """The board's numbers for ``k`` policies under ``protocol`` (a submission's ``protocol`` dict).

    With ``assignment_episodes`` (protocol v2) each user picks the policy best for it on those
    episodes, and every number is measured on the held-out ``episodes``; without (v1) users pick
    on the scoring episodes themselves. ``best_welfare``: welfare of the users' picks;
    ``welfare``: of the solver's own assignment; ``egalitarian_welfare``: the worst-off user under
    the picks; ``utility``: the held-out ``(k, n)`` utilities; ``deployed_assignment``: the picks.
    """
    import rmdp_envs  # noqa: PLC0415

    held_out = rmdp_envs.evaluate(env_id, policies, k, protocol["episodes"], protocol["seed"], env_kwargs)
    if protocol.get("assignment_episodes"):
        picks = rmdp_envs.evaluate(env_id, policies, k, protocol["assignment_episodes"], protocol["assignment_seed"],
                                   env_kwargs).best_assignment
    else:
        picks = held_out.best_assignment
    values = {"best_welfare": held_out.welfare(picks), "welfare": held_out.welfare(own_assignment),
              "egalitarian_welfare": float(held_out.user_utilities(picks).min())}
    if not all(np.isfinite(v) for v in values.values()) or not np.all(np.isfinite(held_out.utility)):
        raise ValueError("scoring produced NaN or infinite values")
    return {**values, "utility": held_out.utility.tolist(), "deployed_assignment": [int(a) for a in picks]}
