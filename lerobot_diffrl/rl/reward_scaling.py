"""Running reward scaling (divide by the std of the running discounted return), as DPPO and many PPO codes do.

Why: a sparse 0/1 success reward with gamma = 0.999 gives returns whose scale drifts as the success rate
rises; scaling keeps the critic's targets near unit variance. The scaler's state is part of a checkpoint's
training state so a resumed run scales exactly as the interrupted one would have.
"""

from __future__ import annotations

import numpy as np


class RunningRewardScaler:
    """Scales rewards by 1 / std(discounted return), the return tracked per env and reset at episode end."""

    def __init__(self, n_envs: int, gamma: float = 0.999, epsilon: float = 1e-8):
        self.gamma = gamma
        self.epsilon = epsilon
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.mean, self.var, self.count = 0.0, 1.0, epsilon

    def _update(self, batch: np.ndarray) -> None:
        """Chan et al.'s parallel update of mean and variance with a batch."""
        batch_mean, batch_var, batch_count = float(batch.mean()), float(batch.var()), batch.size
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean += delta * batch_count / total
        self.var = (
            self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        ) / total
        self.count = total

    def __call__(self, rewards: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
        """Scale one step's rewards (n_envs,); ``episode_end`` marks envs whose episode ended at this step."""
        self.returns = self.returns * self.gamma + rewards
        self._update(self.returns)
        scaled = rewards / np.sqrt(self.var + self.epsilon)
        self.returns[np.asarray(episode_end, dtype=bool)] = 0.0
        return scaled

    def state_dict(self) -> dict:
        return {"returns": self.returns.tolist(), "mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.returns = np.asarray(state["returns"], dtype=np.float64)
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]
