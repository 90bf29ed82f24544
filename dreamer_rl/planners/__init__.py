"""Planning in the learned latent space: CEM (PlaNet, discrete CEM of its fork) and MPPI (TD-MPC), with warm starts.

>>> planner = CEMPlanner(world_model.rssm, world_model.reward, space)   # doctest: +SKIP
>>> action, plan = planner(deter, stoch)                                  # [N, A], [N, H, A]
>>> action, plan = planner(deter, stoch, planner.shift(plan, is_init))    # warm start on the next step
"""

from dreamer_rl.planners.base import LatentPlanner, sample_onehot
from dreamer_rl.planners.cem import CEMPlanner
from dreamer_rl.planners.mppi import MPPIPlanner
from dreamer_rl.planners.rollout import latent_returns

__all__ = ["CEMPlanner", "LatentPlanner", "MPPIPlanner", "latent_returns", "make_planner", "sample_onehot"]


def make_planner(kind: str, rssm, reward, space, **kwargs) -> LatentPlanner:
    """``kind`` ``cem`` or ``mppi`` (MPPI-only keywords are dropped for CEM)."""
    if kind == "cem":
        for key in ("temperature", "momentum", "min_std", "max_std"):
            kwargs.pop(key, None)
        return CEMPlanner(rssm, reward, space, **kwargs)
    if kind == "mppi":
        return MPPIPlanner(rssm, reward, space, **kwargs)
    raise ValueError(f"planner kind {kind!r}; available: 'cem', 'mppi'")
