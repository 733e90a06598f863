# docs: README.md "Solvers"; baseline of Ivanov & Ben-Porat, AAAI 2024 (clustering); PPO after CleanRL ppo_continuous_action.py
"""Clustering PPO for r-MDPs: pretrain one policy for all agents, cluster the agents, train k policies.

Split of the budget (--total-timesteps counts every transition of both phases, as for the other
solvers): the first ``pretrain_fraction`` (default 1/3, the authors' split: max_iters/2 pretraining
then max_iters with k policies) trains a single policy on the summed reward of all n agents over
all k * m copies. The rollout of the last pretraining iteration (batch_size transitions of the
pretrained policy; the authors roll out 10,000) gives each agent a vector of per-step rewards;
scikit-learn's KMeans splits the agents into k groups. The remaining budget trains k policies from
scratch (as the authors do) on that fixed assignment.

Run: ``python solvers/cluster_ppo.py --env-id rmdp/ResourceGathering-v0 --k 5 --total-timesteps 2000000``
"""

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import rmdp_envs
from rmdp_envs.checkpoint import (has_checkpoint, load_checkpoint, load_module, load_optimizer, module_tensors,
                                  optimizer_state, save_checkpoint)
from rmdp_envs.cli import check_run_args, env_kwargs_from, fail
from rmdp_envs.normalization import RunningMeanStd
from rmdp_envs.policies import (GroupedLinear, MultiPolicyActor, PolicySet, atomic_write_json, policy_spec,
                                save_policies)
from rmdp_envs.results import git_commit, hardware, write_result
from sklearn.cluster import KMeans

SOLVER = "cluster"


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment (networks, sampling, environment resets)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, the networks run on CUDA when available (environments always run on the CPU)"""
    torch_threads: int = 1
    """torch intra-op threads while rolling out; the 64-unit networks gain little from more, and the other core steps envs"""
    update_threads: int = 2
    """torch intra-op threads during the PPO update, when no environment is stepping"""
    save_model: bool = False
    """whether to save the k policies (policies.safetensors + policies.json) in the run directory"""
    output_dir: str = "runs"
    """runs are written to `{output_dir}/{run_name}` (TensorBoard events, result.json, checkpoint)"""
    resume: Optional[str] = None
    """a run directory to continue from its last checkpoint (its saved arguments are used)"""
    eval_every: int = 0
    """evaluate and write result.json every this many transitions (0: only at the end)"""
    eval_episodes: Optional[int] = None
    """episodes per policy in each evaluation (default per env: 1 for deterministic ResourceGathering, else 4)"""
    eval_seed: int = 10_000
    """reset seed of the first evaluation episode (episode e uses eval_seed + e)"""
    checkpoint_every: int = 10
    """write a checkpoint every this many iterations (and at the end)"""
    interrupt_after: int = 0
    """testing aid: exit right after the checkpoint of this many iterations of this process, as if killed (0: never)"""

    # Environment arguments
    env_id: str = "rmdp/ResourceGathering-v0"
    """the id of the r-MDP environment"""
    k: int = 5
    """number of policies (the budget)"""
    n_agents: Optional[int] = None
    """number of agents, for environments with a sampled population (default: the environment's)"""
    population: Optional[str] = None
    """population sampler: uniform, clusters or grid (default: the environment's)"""
    population_seed: Optional[int] = None
    """seed of the population sampler (default: the environment's, 0)"""
    env_kwargs: Optional[str] = None
    """further environment keyword arguments as a JSON object, e.g. '{"instance_seed": 3}'"""

    # Algorithm specific arguments (None: the per-environment default of ENV_DEFAULTS)
    total_timesteps: int = 2_000_000
    """environment transitions summed over all policies (solvers compare at equal samples)"""
    num_envs: Optional[int] = None
    """environment copies per policy (k * num_envs copies step together)"""
    num_workers: Optional[int] = None
    """worker processes that step a share of the copies (rmdp_envs.make_vector_env; default: 1 for MuJoCo, 0 otherwise)"""
    num_steps: Optional[int] = None
    """steps per copy in each rollout"""
    learning_rate: Optional[float] = None
    """initial learning rate of the actor and critic (annealed linearly to learning_rate_end)"""
    learning_rate_end: Optional[float] = None
    """final learning rate"""
    adam_eps: Optional[float] = None
    """epsilon of Adam"""
    gamma: Optional[float] = None
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation"""
    num_minibatches: Optional[int] = None
    """minibatches per epoch; each holds the same number of transitions of every policy"""
    update_epochs: Optional[int] = None
    """epochs of each PPO update"""
    clip_coef: float = 0.2
    """PPO surrogate clipping coefficient"""
    ent_coef: Optional[float] = None
    """initial entropy coefficient (annealed geometrically to ent_coef_end)"""
    ent_coef_end: Optional[float] = None
    """final entropy coefficient"""
    vf_coef: float = 0.5
    """value-loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient-norm clip, applied to each policy (and its critic) separately"""
    target_kl: Optional[float] = None
    """stop the update's epochs once the mean approximate KL exceeds this (default per env; <= 0: never)"""
    norm_obs: Optional[bool] = None
    """running observation normalization, clipped to [-5, 5] (default: on for MuJoCo, off for ResourceGathering)"""
    bootstrap_truncated: Optional[bool] = None
    """bootstrap from the value of the last observation at time-limit truncations (default: on for MuJoCo)"""
    hidden_size: int = 64
    """units of the two tanh hidden layers of actor and critic"""
    shared_torso: bool = False
    """one torso shared by the k policies with k heads (the authors' choice) instead of k separate networks"""
    init_log_std: float = -1.0
    """initial log standard deviation of the Gaussian policies (continuous actions; learned)"""
    utility_ema: float = 0.95
    """EMA factor of the utility estimate U[p, i] from episode returns of agent i under policy p (train welfare)"""
    pretrain_fraction: float = 1 / 3
    """fraction of the iterations that pretrain the single policy (the rest trains the k clustered policies)"""
    # to be filled in runtime
    batch_size: int = 0
    """transitions per iteration, all policies (computed in runtime)"""
    minibatch_size: int = 0
    """transitions of each policy per minibatch (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# Per-environment defaults for the arguments left at None. ResourceGathering: the authors' values
# (undiscounted, strong entropy bonus early on, no observation normalization); a truncated trip
# pays nothing, so truncation is treated as an end. MuJoCo: the authors' PPO values, with fewer,
# larger minibatches (8 per epoch) for throughput on a CPU.
ENV_DEFAULTS = {
    "rmdp/ResourceGathering-v0": dict(
        num_envs=8, num_steps=64, learning_rate=5e-4, learning_rate_end=1e-4, adam_eps=1e-8, gamma=1.0,
        num_minibatches=4, update_epochs=4, ent_coef=5e-2, ent_coef_end=1e-3, target_kl=0.0, norm_obs=False,
        bootstrap_truncated=False, eval_episodes=1, num_workers=0),
    # tabular r-MDPs: finite horizon, undiscounted, stochastic (more evaluation episodes), cheap steps
    **{env_id: dict(
        num_envs=8, num_steps=64, learning_rate=5e-4, learning_rate_end=1e-4, adam_eps=1e-8, gamma=1.0,
        num_minibatches=4, update_epochs=4, ent_coef=5e-2, ent_coef_end=1e-3, target_kl=0.0, norm_obs=False,
        bootstrap_truncated=False, eval_episodes=20, num_workers=0)
       for env_id in ("rmdp/TabularRandom-v0", "rmdp/GridGoals-v0", "rmdp/Chain-v0")},
    "default": dict(
        num_envs=8, num_steps=256, learning_rate=3e-4, learning_rate_end=1e-4, adam_eps=1e-5, gamma=0.99,
        num_minibatches=4, update_epochs=5, ent_coef=1e-3, ent_coef_end=1e-4, target_kl=0.05, norm_obs=True,
        bootstrap_truncated=True, eval_episodes=4, num_workers=1),
}


def apply_env_defaults(args: Args) -> Args:
    defaults = ENV_DEFAULTS.get(args.env_id, ENV_DEFAULTS["default"])
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


class MultiCritic(nn.Module):
    """Values of all n agents under each of the k policies: ``(k, B, obs_dim) -> (k, B, n)``.

    One output per agent: an agent's value under a policy is a fixed function of the state, so the
    critic stays valid when the E-step moves agents between policies, and the group value of any
    assignment is a sum of outputs. k separate networks (batched matmuls, same cost as one network
    with a one-hot policy input) because the policies visit different states. The last layer costs
    O(hidden * n) per state: fine for the paper's n <= 100; a population-conditioned critic would
    be the choice for n in the thousands.
    """

    def __init__(self, k: int, obs_dim: int, n: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([GroupedLinear(k, obs_dim, hidden), GroupedLinear(k, hidden, hidden)])
        self.head = GroupedLinear(k, hidden, n, std=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = obs
        for layer in self.layers:
            h = torch.tanh(layer(h))
        return self.head(h)


def sample_actions(actor: MultiPolicyActor, obs: torch.Tensor):
    """Sample from every policy at once: ``(k, B, obs_dim)`` -> actions and log-probabilities ``(k, B)``."""
    out = actor(obs)
    if actor.discrete:
        logp_all = torch.log_softmax(out, dim=-1)
        gumbel = -torch.log(-torch.log(torch.rand_like(out).clamp_(1e-20, 1.0)))
        actions = (logp_all + gumbel).argmax(dim=-1)
        return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    log_std = actor.log_std.unsqueeze(1)
    actions = out + log_std.exp() * torch.randn_like(out)
    return actions, gaussian_log_prob(out, log_std, actions)


def gaussian_log_prob(mean, log_std, actions):
    return (-0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def evaluate_actions(actor: MultiPolicyActor, obs: torch.Tensor, actions: torch.Tensor):
    """Log-probabilities and entropies ``(k, B)`` of given actions under the current policies."""
    out = actor(obs)
    if actor.discrete:
        logp_all = torch.log_softmax(out, dim=-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy
    log_std = actor.log_std.unsqueeze(1).expand_as(out)
    entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
    return gaussian_log_prob(out, log_std, actions), entropy


def clip_grad_norm_per_policy(grouped: list, shared: list, k: int, max_norm: float) -> torch.Tensor:
    """Clip each policy's gradient norm separately (grouped parameters have a leading k axis).

    A global clip over k policies would let one policy's large gradient shrink all the others'.
    Parameters shared by all policies (``--shared-torso``) are clipped together.
    """
    grads = [p.grad for p in grouped if p.grad is not None]
    norms = torch.sqrt(sum(g.reshape(k, -1).pow(2).sum(1) for g in grads))
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view((k,) + (1,) * (g.dim() - 1)))
    if shared:
        nn.utils.clip_grad_norm_(shared, max_norm)
    return norms


def compute_gae(rewards, values, next_values, ends, gamma: float, lam: float):
    """GAE for every (step, copy, agent) at once: inputs ``(T, E, n)`` (ends ``(T, E)``)."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        nonterminal = 1.0 - ends[t].unsqueeze(-1)
        delta = rewards[t] + gamma * next_values[t] * nonterminal - values[t]
        lastgaelam = delta + gamma * lam * nonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages


def cluster_agents(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """KMeans(k) on the agents' reward vectors (one row per agent); no group is left empty."""
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features).astype(np.int64)
    for p in range(k):  # identical reward vectors can leave a cluster empty: move an agent from the largest
        if not (labels == p).any():
            largest = np.bincount(labels, minlength=k).argmax()
            labels[np.flatnonzero(labels == largest)[-1]] = p
    return labels


if __name__ == "__main__":
    args = tyro.cli(Args)
    run_dir = None
    if args.resume is not None:
        run_dir = Path(args.resume)
        if not (run_dir / "args.json").is_file() or not has_checkpoint(run_dir):
            fail(f"--resume {args.resume}: not a run directory with args.json and checkpoint.safetensors")
        saved = json.loads((run_dir / "args.json").read_text())
        args = Args(**{**saved, "resume": args.resume, "interrupt_after": args.interrupt_after})
    args = apply_env_defaults(args)
    env_kwargs = env_kwargs_from(args.n_agents, args.population, args.population_seed, args.env_kwargs)
    probe = check_run_args(
        args.env_id, env_kwargs, args.k, args.total_timesteps,
        positive=dict(num_envs=args.num_envs, num_steps=args.num_steps, num_minibatches=args.num_minibatches,
                      update_epochs=args.update_epochs, learning_rate=args.learning_rate, eval_episodes=args.eval_episodes,
                      checkpoint_every=args.checkpoint_every, torch_threads=args.torch_threads),
        non_negative=dict(eval_every=args.eval_every, num_workers=args.num_workers, interrupt_after=args.interrupt_after))
    if not 0 < args.pretrain_fraction < 1:
        fail(f"--pretrain-fraction must lie in (0, 1), got {args.pretrain_fraction}")
    k, m = args.k, args.num_envs
    n = probe.unwrapped.population.n
    population = probe.unwrapped.population.to_dict()
    discrete = not hasattr(probe.action_space, "low")
    obs_dim = int(np.prod(probe.observation_space.shape))
    act_dim = 1 if discrete else int(np.prod(probe.action_space.shape))
    out_dim = int(probe.action_space.n) if discrete else act_dim  # logits or Gaussian mean
    action_low = None if discrete else probe.action_space.low
    action_high = None if discrete else probe.action_space.high
    probe.close()
    if args.num_steps * m % args.num_minibatches:
        fail(f"--num-minibatches {args.num_minibatches} must divide num_steps * num_envs = {args.num_steps * m}")
    args.batch_size = k * m * args.num_steps
    args.minibatch_size = args.num_steps * m // args.num_minibatches
    args.num_iterations = math.ceil(args.total_timesteps / args.batch_size)
    pretrain_iterations = max(1, round(args.pretrain_fraction * args.num_iterations))
    if args.num_iterations < pretrain_iterations + 1:
        fail(f"--total-timesteps {args.total_timesteps} gives {args.num_iterations} iterations of {args.batch_size} "
             f"transitions: too few for pretraining and clustered training")
    if run_dir is None:
        run_name = f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.seed}__{int(time.time())}"
        run_dir = Path(args.output_dir) / run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "args.json", {key: value for key, value in asdict(args).items()
                                                  if key not in ("batch_size", "minibatch_size", "num_iterations")})
    run_name = run_dir.name

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    obs_rms = RunningMeanStd((obs_dim,), enabled=args.norm_obs)  # shared by both phases

    def make_learner(K: int):
        """Envs, actor, critic and optimizer of K policies on the k * m copies (K = 1 while pretraining)."""
        # env setup: K policies x (k * m / K) copies, policy-major
        envs = rmdp_envs.make_vector_env(args.env_id, K, k * m // K, env_kwargs, num_workers=args.num_workers)
        actor = MultiPolicyActor(K, obs_dim, out_dim, hidden=(args.hidden_size,) * 2, shared_torso=args.shared_torso,
                                 discrete=discrete, init_log_std=args.init_log_std).to(device)
        critic = MultiCritic(K, obs_dim, n, args.hidden_size).to(device)
        optimizer = optim.Adam(list(actor.parameters()) + list(critic.parameters()), lr=args.learning_rate,
                               eps=args.adam_eps, foreach=True)
        grouped_actor = [p for mod in actor.modules() if isinstance(mod, GroupedLinear) for p in mod.parameters()]
        grouped_actor += [actor.log_std] if not discrete else []
        shared_actor = [p for p in actor.parameters() if all(p is not q for q in grouped_actor) and p.requires_grad]
        return envs, actor, critic, optimizer, grouped_actor, shared_actor, list(critic.parameters())

    # algorithm state
    phase, K, M = 1, 1, k * m  # phase 1: one policy on all copies; phase 2: k policies x m copies
    assignment = np.zeros(n, dtype=np.int64)  # every agent on the single pretrained policy
    utility = np.zeros((K, n))  # U[p, i]: EMA of agent i's episode returns under policy p
    seen = np.zeros(K, dtype=bool)
    global_step, iteration, wall_offset, next_eval = 0, 0, 0.0, args.eval_every
    eval_history: list[dict] = []

    if args.resume is not None:
        tensors, state = load_checkpoint(run_dir)
        phase = state["phase"]
        K, M = (1, k * m) if phase == 1 else (k, m)
    envs, actor, critic, optimizer, grouped_actor, shared_actor, critic_params = make_learner(K)
    if args.resume is not None:
        load_module("actor", actor, tensors)
        load_module("critic", critic, tensors)
        load_optimizer("optimizer", optimizer, tensors, state["optimizer"])
        obs_rms.load_state_dict({"mean": tensors["obs_rms/mean"].numpy(), "var": tensors["obs_rms/var"].numpy(),
                                 "count": state["obs_rms_count"]})
        torch.set_rng_state(tensors["rng/torch"])
        rng.bit_generator.state = state["numpy_rng"]
        assignment = np.asarray(state["assignment"], dtype=np.int64)
        utility = np.asarray(state["utility"], dtype=np.float64)
        seen = np.asarray(state["seen"], dtype=bool)
        global_step, iteration, wall_offset = state["global_step"], state["iteration"], state["wall_time_s"]
        next_eval, eval_history = state["next_eval"], state["eval_history"]
        print(f"resumed {run_dir} at iteration {iteration}, {global_step} transitions")

    writer = SummaryWriter(str(run_dir), purge_step=global_step if args.resume else None)
    if args.resume is None:
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % "\n".join(f"|{key}|{value}|" for key, value in vars(args).items()))

    def policy_set() -> PolicySet:
        """The live actor behind the deterministic policy_fn that load_policies would rebuild."""
        return PolicySet(actor, policy_spec(actor, env_id=args.env_id, env_kwargs=env_kwargs, action_low=action_low,
                                            action_high=action_high, **obs_rms.spec()))

    def evaluate_now() -> dict:
        actor.cpu()
        result = rmdp_envs.evaluate(args.env_id, policy_set(), K, args.eval_episodes, args.eval_seed, env_kwargs)
        actor.to(device).train()
        # while pretraining, the solution is the single policy used k times
        utility_k = np.repeat(result.utility, k // K, axis=0)
        return {"utility": utility_k, "welfare": result.welfare(assignment), "best_welfare": result.best_welfare,
                "best_assignment": result.best_assignment, "phase": phase}

    def result_dict(ev: dict, finished: bool) -> dict:
        return {
            "env_id": args.env_id, "env_kwargs": env_kwargs, "population": population, "solver": SOLVER,
            "commit": git_commit(), "seed": args.seed, "k": k, "n_agents": n, "total_timesteps": args.total_timesteps,
            "transitions": global_step, "wall_time_s": wall_offset + time.time() - start_time,
            "transitions_per_s": global_step / max(wall_offset + time.time() - start_time, 1e-9),
            "utility": ev["utility"], "assignment": assignment, "welfare": ev["welfare"],
            "best_welfare": ev["best_welfare"], "best_assignment": ev["best_assignment"],
            "eval_episodes": args.eval_episodes, "eval_seed": args.eval_seed, "finished": finished,
            "eval_history": eval_history, "hardware": hardware(), "torch_threads": args.torch_threads,
            "phase": ev["phase"], "pretrain_iterations": pretrain_iterations, "run_name": run_name, "rmdp_version": rmdp_envs.__version__, "args": vars(args),
        }

    def record_eval() -> dict:
        eval_start = time.time()
        ev = evaluate_now()
        eval_history.append({"global_step": global_step, "wall_time_s": wall_offset + time.time() - start_time,
                             "eval_s": time.time() - eval_start, "welfare": ev["welfare"], "best_welfare": ev["best_welfare"]})
        writer.add_scalar("welfare/eval", ev["welfare"], global_step)
        writer.add_scalar("welfare/eval_best_response", ev["best_welfare"], global_step)
        return ev

    def checkpoint() -> None:
        tensors = {**module_tensors("actor", actor), **module_tensors("critic", critic),
                   "obs_rms/mean": torch.as_tensor(obs_rms.mean), "obs_rms/var": torch.as_tensor(obs_rms.var),
                   "rng/torch": torch.get_rng_state()}
        opt_tensors, opt_meta = optimizer_state("optimizer", optimizer)
        tensors.update(opt_tensors)
        save_checkpoint(run_dir, tensors, {
            "phase": phase, "optimizer": opt_meta, "obs_rms_count": obs_rms.count, "numpy_rng": rng.bit_generator.state,
            "assignment": assignment.tolist(), "utility": utility.tolist(), "seen": seen.tolist(),
            "global_step": global_step, "iteration": iteration, "wall_time_s": wall_offset + time.time() - start_time,
            "next_eval": next_eval, "eval_history": eval_history})

    # ALGO Logic: Storage setup
    T, E = args.num_steps, k * m
    obs_buf = torch.zeros((T, E, obs_dim), device=device)
    actions_buf = torch.zeros((T, E) if discrete else (T, E, act_dim), device=device)
    logprobs_buf = torch.zeros((T, E), device=device)
    rewards_buf = torch.zeros((T, E, n), device=device)
    ends_buf = torch.zeros((T, E), device=device)
    policy_of_env = torch.as_tensor(envs.policy_index, device=device)

    start_time = time.time()
    start_step = global_step
    raw_obs, _ = envs.reset(seed=args.seed + 7919 * iteration)  # a resumed run starts fresh episodes
    obs_rms.update(raw_obs)
    next_obs = torch.as_tensor(obs_rms.normalize(raw_obs), device=device)
    progress = tqdm(total=args.num_iterations * args.batch_size, initial=global_step, unit="step", mininterval=1.0,
                    dynamic_ncols=True)
    iterations_this_process = 0
    while iteration < args.num_iterations:
        iteration += 1
        frac = (iteration - 1.0) / args.num_iterations
        lr = args.learning_rate_end + (args.learning_rate - args.learning_rate_end) * (1.0 - frac)
        optimizer.param_groups[0]["lr"] = lr
        ent_coef = args.ent_coef * (args.ent_coef_end / args.ent_coef) ** frac if args.ent_coef > 0 else 0.0

        # rollout: one batched forward pass of all k policies per step
        truncation_bootstrap = []  # (step, sub-env, normalized final obs) of time-limit truncations
        for step in range(T):
            global_step += E
            obs_buf[step] = next_obs
            with torch.no_grad():
                action, logprob = sample_actions(actor, next_obs.view(K, M, obs_dim))
            actions_buf[step] = action.reshape(actions_buf.shape[1:])
            logprobs_buf[step] = logprob.reshape(E)
            env_action = action.reshape((E,) if discrete else (E, act_dim)).cpu().numpy()
            if not discrete:
                env_action = np.clip(env_action, action_low, action_high)
            raw_obs, reward, terminations, truncations, infos = envs.step(env_action)
            rewards_buf[step] = torch.as_tensor(reward, device=device)
            ends_buf[step] = torch.as_tensor(terminations | truncations, device=device, dtype=torch.float32)
            if args.bootstrap_truncated and truncations.any():
                for e in np.flatnonzero(truncations & ~terminations):
                    truncation_bootstrap.append((step, e, obs_rms.normalize(infos["final_obs"][e])))
            if "_episode" in infos:
                for e in np.flatnonzero(infos["_episode"]):
                    p = e // M
                    r = infos["episode"]["r"][e]
                    utility[p] = args.utility_ema * utility[p] + (1 - args.utility_ema) * r if seen[p] else r
                    seen[p] = True
            obs_rms.update(raw_obs)
            next_obs = torch.as_tensor(obs_rms.normalize(raw_obs), device=device)

        # values of all agents under each policy, in one batched pass after the rollout
        with torch.no_grad():
            grouped_obs = torch.cat([obs_buf, next_obs.unsqueeze(0)]).view(T + 1, K, M, obs_dim).permute(1, 0, 2, 3)
            values_all = critic(grouped_obs.reshape(K, (T + 1) * M, obs_dim)).view(K, T + 1, M, n)
            values_all = values_all.permute(1, 0, 2, 3).reshape(T + 1, E, n)
            values, next_values = values_all[:-1], values_all[1:]
            rewards = rewards_buf.clone()
            if truncation_bootstrap:
                steps_, envs_, final = zip(*truncation_bootstrap)
                final = torch.as_tensor(np.stack(final), device=device)
                final_values = critic(final.unsqueeze(0).expand(K, -1, -1))  # (k, F, n); take each row's own policy
                pol = policy_of_env[list(envs_)]
                rewards[list(steps_), list(envs_)] += args.gamma * final_values[pol, torch.arange(len(envs_))]
            advantages = compute_gae(rewards, values, next_values, ends_buf, args.gamma, args.gae_lambda)
            returns = advantages + values
            # the advantage of policy p: the mean GAE of the agents assigned to p
            mask = torch.as_tensor(np.arange(K)[:, None] == assignment[None, :], dtype=torch.float32, device=device)
            mask = mask / mask.sum(1, keepdim=True).clamp(min=1)
            group_adv = (advantages * mask[policy_of_env]).sum(-1)  # (T, E)

        # flatten per policy: (T, k, m, ...) -> (k, T * m, ...)
        def per_policy(x):
            return x.view((T, K, M) + x.shape[2:]).transpose(0, 1).reshape((K, T * M) + x.shape[2:])

        b_obs, b_actions, b_logprobs = per_policy(obs_buf), per_policy(actions_buf), per_policy(logprobs_buf)
        b_adv, b_returns = per_policy(group_adv), per_policy(returns)

        # PPO on every policy at once, minibatches grouped per policy

        torch.set_num_threads(args.update_threads)
        N = T * M
        mb = N // args.num_minibatches
        clipfracs, approx_kl = [], torch.zeros(())
        for epoch in range(args.update_epochs):
            perm = torch.as_tensor(np.argsort(rng.random((K, N)), axis=1), device=device)
            for start in range(0, N, mb):
                idx = perm[:, start:start + mb]
                mb_obs = torch.gather(b_obs, 1, idx.unsqueeze(-1).expand(-1, -1, obs_dim))
                mb_actions = (torch.gather(b_actions, 1, idx) if discrete
                              else torch.gather(b_actions, 1, idx.unsqueeze(-1).expand(-1, -1, act_dim)))
                mb_logprobs, mb_adv = torch.gather(b_logprobs, 1, idx), torch.gather(b_adv, 1, idx)
                mb_returns = torch.gather(b_returns, 1, idx.unsqueeze(-1).expand(-1, -1, n))

                newlogprob, entropy = evaluate_actions(actor, mb_obs, mb_actions)
                logratio = newlogprob - mb_logprobs
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = (mb_adv - mb_adv.mean(1, keepdim=True)) / (mb_adv.std(1, keepdim=True) + 1e-8)  # per policy
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef))
                pg_loss = pg_loss.mean(1).sum()  # each policy's loss as if alone
                v_loss = 0.5 * ((critic(mb_obs) - mb_returns) ** 2).mean((1, 2)).sum()
                entropy_loss = entropy.mean(1).sum()
                loss = pg_loss - ent_coef * entropy_loss + args.vf_coef * v_loss

                optimizer.zero_grad()
                loss.backward()
                clip_grad_norm_per_policy(grouped_actor, shared_actor, K, args.max_grad_norm)
                clip_grad_norm_per_policy(critic_params, [], K, args.max_grad_norm)
                optimizer.step()
            if args.target_kl and approx_kl > args.target_kl:
                break
        torch.set_num_threads(args.torch_threads)

        # end of pretraining: cluster the agents on the per-step rewards of this rollout, start k policies
        flips = 0
        if phase == 1 and iteration == pretrain_iterations:
            features = rewards_buf.reshape(T * E, n).T.cpu().numpy()  # (n, transitions)
            assignment = cluster_agents(features, k, args.seed)
            flips = int((assignment != 0).sum())
            phase, K, M = 2, k, m
            envs.close()
            envs, actor, critic, optimizer, grouped_actor, shared_actor, critic_params = make_learner(K)
            policy_of_env = torch.as_tensor(envs.policy_index, device=device)
            utility, seen = np.zeros((K, n)), np.zeros(K, dtype=bool)
            raw_obs, _ = envs.reset(seed=args.seed + 7919 * iteration)
            obs_rms.update(raw_obs)
            next_obs = torch.as_tensor(obs_rms.normalize(raw_obs), device=device)
            progress.write(f"iteration {iteration}: clustered the agents into groups of sizes {np.bincount(assignment, minlength=k).tolist()}")

        # logging
        sps = int((global_step - start_step) / (time.time() - start_time))
        sizes = np.bincount(assignment, minlength=K)
        train_welfare = float(utility[assignment, np.arange(n)].mean()) if seen.all() else float("nan")
        writer.add_scalar("charts/learning_rate", lr, global_step)
        writer.add_scalar("charts/ent_coef", ent_coef, global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        writer.add_scalar("losses/value_loss", v_loss.item() / K, global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item() / K, global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item() / K, global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", float(np.mean(clipfracs)), global_step)
        if seen.all():
            writer.add_scalar("welfare/train", train_welfare, global_step)
        writer.add_scalar("assignment/sizes", sizes.min(), global_step)  # the smallest group
        writer.add_scalar("assignment/largest", sizes.max(), global_step)
        writer.add_scalar("assignment/flips", flips, global_step)  # nonzero only at the clustering
        writer.add_scalar("charts/phase", phase, global_step)
        progress.update(args.batch_size)
        progress.set_postfix(welfare=f"{train_welfare:.4f}", sps=sps, refresh=False)

        if args.eval_every and global_step >= next_eval and iteration < args.num_iterations:
            while next_eval <= global_step:
                next_eval += args.eval_every
            ev = record_eval()
            write_result(run_dir, result_dict(ev, finished=False))
            progress.write(f"step {global_step}: eval welfare {ev['welfare']:.4f}, best response {ev['best_welfare']:.4f}")
        iterations_this_process += 1
        if iteration % args.checkpoint_every == 0 or iteration == args.num_iterations:
            checkpoint()
            if args.interrupt_after and iterations_this_process >= args.interrupt_after and iteration < args.num_iterations:
                progress.close()
                print(f"interrupted after iteration {iteration} (checkpoint written); continue with --resume {run_dir}")
                raise SystemExit(0)
    progress.close()

    ev = record_eval()
    write_result(run_dir, result_dict(ev, finished=True))
    if args.save_model:
        save_policies(run_dir, actor.cpu(), env_id=args.env_id, env_kwargs=env_kwargs, action_low=action_low,
                      action_high=action_high, extra={"solver": SOLVER, "assignment": assignment.tolist()}, **obs_rms.spec())
        print(f"policies saved to {run_dir}")
    print(f"{run_name}: welfare {ev['welfare']:.4f} (assignment), best response {ev['best_welfare']:.4f}, "
          f"{global_step} transitions in {wall_offset + time.time() - start_time:.1f}s")
    envs.close()
    writer.close()
