"""rmdp: environments for personalized RL with a budget of policies (represented MDPs).

``import rmdp_envs`` registers the ``rmdp/`` Gymnasium ids. An r-MDP returns a reward vector
with one entry per agent (user); ``env.unwrapped.population`` holds the agents' parameters.
"""

from rmdp_envs.core import check_assignment, check_k, round_robin
from rmdp_envs.evaluation import EvalResult, evaluate
from rmdp_envs.exact import em_exact, optimal_welfare, policy_welfare, welfare_bounds
from rmdp_envs.parallel import RMDPParallelEnv, parallel_env
from rmdp_envs.policies import MultiPolicyActor, PolicySet, load_policies, save_policies
from rmdp_envs.population import Population
from rmdp_envs.registration import make, register_envs, registered_ids
from rmdp_envs.tabular import TabularRMDP
from rmdp_envs.vector import RMDPVectorEnv, make_vector_env
from rmdp_envs.wrappers import GroupReward

register_envs()

__version__ = "0.1.0"

__all__ = [
    "EvalResult", "GroupReward", "Population", "RMDPParallelEnv", "RMDPVectorEnv",
    "check_assignment", "check_k", "evaluate", "make", "make_vector_env", "parallel_env",
    "register_envs", "registered_ids", "round_robin",
]
__all__ += ["MultiPolicyActor", "PolicySet", "load_policies", "save_policies"]
__all__ += ["TabularRMDP", "em_exact", "optimal_welfare", "policy_welfare", "welfare_bounds"]
