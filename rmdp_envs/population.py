"""Populations: the reward parameters of the n users (users) of an r-MDP, as seeded data.

A population is data, not code: the environment receives it and computes every user's
reward from it. Keeping it separate (as Jumanji injects generators) lets a benchmark
fix, save, share and resample populations without touching the dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Sampler names accepted by :meth:`Population.sample`.
SAMPLERS = ("uniform", "clusters", "grid")


@dataclass(frozen=True, eq=False)
class Population:
    """The reward parameters of ``n`` users.

    Attributes:
        params: array of shape ``(n, d)``; row ``i`` parametrizes user ``i``'s reward
            (for the speed tasks ``d = 1``: the user's target velocity).
        kind: name of the sampler that produced ``params`` (or a descriptive tag such as
            ``"cells"`` for a population fixed by the environment).
        seed: the sampler's seed, ``None`` for deterministic populations.
        meta: extra sampler arguments (interval, number of clusters...), kept for provenance.
    """

    params: np.ndarray
    kind: str
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        params = np.asarray(self.params, dtype=np.float64)
        if params.ndim == 1:
            params = params[:, None]
        if params.ndim != 2 or params.shape[0] < 1:
            raise ValueError(f"Population params must have shape (n, d) with n >= 1, got {params.shape}")
        if not np.all(np.isfinite(params)):
            raise ValueError("Population params contain NaN or infinite values")
        params.setflags(write=False)
        object.__setattr__(self, "params", params)

    @property
    def n(self) -> int:
        """Number of users."""
        return int(self.params.shape[0])

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Population):
            return NotImplemented
        if other is self:  # the copies of a vector env share one (tabular_generators): no O(n x d) comparison
            return True
        return (
            self.kind == other.kind
            and self.seed == other.seed
            and self.meta == other.meta
            and np.array_equal(self.params, other.params)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict; :meth:`from_dict` inverts it exactly."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "n": self.n,
            "meta": dict(self.meta),
            "params": self.params.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Population":
        """Rebuild a population saved by :meth:`to_dict`."""
        missing = {"kind", "params"} - set(data)
        if missing:
            raise ValueError(f"Population dict is missing keys: {sorted(missing)}")
        pop = cls(params=np.asarray(data["params"], dtype=np.float64), kind=str(data["kind"]),
                  seed=data.get("seed"), meta=dict(data.get("meta", {})))
        if "n" in data and int(data["n"]) != pop.n:
            raise ValueError(f"Population dict says n={data['n']} but params has {pop.n} rows")
        return pop

    @classmethod
    def sample(
        cls,
        kind: str,
        n: int,
        low: float = 0.0,
        high: float = 1.0,
        seed: int | None = 0,
        n_clusters: int = 3,
        cluster_width: float | None = None,
    ) -> "Population":
        """Sample ``n`` scalar parameters in ``[low, high]``.

        Args:
            kind: ``"uniform"`` (i.i.d. uniform, the paper's; returned sorted, so user order
                follows the parameter: users are exchangeable and sorted ones make rewards and
                plots cheaper), ``"clusters"`` (``n_clusters``
                tight groups with uniformly drawn centres, so the true structure is known) or
                ``"grid"`` (evenly spaced cell centres, deterministic: ``seed`` is ignored).
            n: number of users, ``>= 1``.
            low, high: the interval, ``low < high``.
            seed: seed of the sampler.
            n_clusters: number of groups for ``"clusters"``.
            cluster_width: spread of each group for ``"clusters"``; default ``(high-low)/50``.
        """
        if kind not in SAMPLERS:
            raise ValueError(f"unknown population kind {kind!r}; expected one of {SAMPLERS}")
        if isinstance(n, (bool, str)) or int(n) != n or n < 1:
            raise ValueError(f"population size n must be an integer >= 1, got {n!r}")
        n = int(n)
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed or seed < 0):
            raise ValueError(f"population seed must be an integer >= 0 (or None), got {seed!r}")
        if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
            raise ValueError(f"population interval needs finite low < high, got low={low}, high={high}")
        meta: dict[str, Any] = {"low": float(low), "high": float(high)}
        if kind == "uniform":
            params = np.sort(np.random.default_rng(seed).uniform(low, high, size=n))
        elif kind == "grid":
            seed = None
            step = (high - low) / n
            params = low + step * (np.arange(n) + 0.5)
        else:
            if n_clusters < 1:
                raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
            width = (high - low) / 50 if cluster_width is None else float(cluster_width)
            if width < 0:
                raise ValueError(f"cluster_width must be >= 0, got {width}")
            rng = np.random.default_rng(seed)
            centres = rng.uniform(low + width, high - width, size=n_clusters)
            labels = np.arange(n) % n_clusters
            params = np.clip(centres[labels] + rng.uniform(-width, width, size=n), low, high)
            meta.update(n_clusters=int(n_clusters), cluster_width=width,
                        centres=centres.tolist(), labels=labels.tolist())
        return cls(params=params[:, None], kind=kind, seed=seed, meta=meta)
