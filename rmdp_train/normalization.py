"""Running mean and variance of observations (the normalizer every PPO solver uses).

Matches :class:`rmdp_train.policies.PolicySet`: ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``,
so a saved policy sees exactly the inputs it was trained on.
"""

from __future__ import annotations

import numpy as np


class RunningMeanStd:
    """Parallel-algorithm running moments (Chan et al.) in float64, as in Gymnasium's wrapper.

    ``update(batch)`` takes ``(B, *shape)``; ``normalize(x)`` applies the current statistics.
    ``enabled=False`` turns it into the identity (statistics are still kept at their prior).
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, epsilon: float = 1e-8, enabled: bool = True):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4
        self.clip, self.epsilon, self.enabled = float(clip), float(epsilon), bool(enabled)

    def update(self, batch: np.ndarray) -> None:
        if not self.enabled:
            return
        batch = np.asarray(batch, dtype=np.float64).reshape((-1,) + self.mean.shape)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(x, dtype=np.float32)
        x = np.asarray(x, dtype=np.float64)
        return np.clip((x - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip).astype(np.float32)

    def spec(self) -> dict:
        """Keyword arguments of :func:`rmdp_train.policies.save_policies` (``None`` stats when disabled)."""
        if not self.enabled:
            return {"obs_mean": None, "obs_var": None}
        return {"obs_mean": self.mean, "obs_var": self.var, "obs_clip": self.clip, "obs_epsilon": self.epsilon}

    def state_dict(self) -> dict:
        """Arrays and scalars for a checkpoint (``mean``/``var`` as float64 arrays)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(self.mean.shape).copy()
        self.var = np.asarray(state["var"], dtype=np.float64).reshape(self.var.shape).copy()
        self.count = float(state["count"])
