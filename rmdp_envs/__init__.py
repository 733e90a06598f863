"""rmdp: environments for personalized RL with a budget of policies (represented MDPs).

``import rmdp_envs`` registers the ``rmdp/`` Gymnasium ids. An r-MDP returns a reward vector
with one entry per user; ``env.unwrapped.population`` holds the users' parameters. This package
needs gymnasium, MuJoCo, PettingZoo and numpy only: it never imports torch. Loading saved
policies (:func:`load_policies`) is the one entry point that needs the training extra
(``pip install -e .[train]``); it imports torch when called.
"""

from rmdp_envs.bounds import k_policy_bound
from rmdp_envs.checks import RMDPContractError, check_rmdp_env
from rmdp_envs.core import (EMPTY_POLICY_RULES, EmptyPolicyRule, check_assignment, check_k, e_step, round_robin,
                            split_largest_groups, upper_welfare)
from rmdp_envs.evaluation import EvalResult, evaluate
from rmdp_envs.exact import em_exact, optimal_welfare, policy_welfare, welfare_bounds
from rmdp_envs.parallel import RMDPParallelEnv, parallel_env
from rmdp_envs.population import Population
from rmdp_envs.registration import env_metadata, make, register, register_envs, registered_ids
from rmdp_envs.results import RunResult
from rmdp_envs.tabular import TabularRMDP
from rmdp_envs.vector import RMDPVectorEnv, make_vector_env
from rmdp_envs.wrappers import GroupReward

register_envs()

__version__ = "0.1.0"

#: Names served by the training package (torch), imported on first use.
_TRAIN_NAMES = ("MultiPolicyActor", "PolicySet", "load_policies", "save_policies")

__all__ = [
    "EMPTY_POLICY_RULES", "EmptyPolicyRule", "EvalResult", "GroupReward", "Population", "RMDPParallelEnv",
    "RMDPContractError", "RMDPVectorEnv", "RunResult",
    "check_assignment", "check_k", "check_rmdp_env", "e_step", "k_policy_bound", "env_metadata", "evaluate", "make", "make_vector_env",
    "parallel_env", "register", "register_envs", "registered_ids", "round_robin", "split_largest_groups", "upper_welfare",
    "TabularRMDP", "em_exact", "optimal_welfare", "policy_welfare", "welfare_bounds",
    *_TRAIN_NAMES,
]


def __getattr__(name: str):
    """``rmdp_envs.load_policies`` and friends live in :mod:`rmdp_train.policies` (torch): load lazily."""
    if name in _TRAIN_NAMES:
        try:
            from rmdp_train import policies  # noqa: PLC0415
        except ImportError as e:
            raise ImportError(f"rmdp_envs.{name} needs the training extra (torch, safetensors): "
                              f"pip install -e '.[train]' ({e})") from e
        return getattr(policies, name)
    raise AttributeError(f"module 'rmdp_envs' has no attribute {name!r}")
