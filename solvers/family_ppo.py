# docs: README.md "Solvers"; a policy-family baseline (conditioned policies, then k chosen exactly); PPO after CleanRL ppo_continuous_action.py
"""Policy-family PPO for r-MDPs: one policy conditioned on a user's parameters, then the best k members.

Training: one actor and one critic take the observation together with the normalized parameters
of a user (a target speed, a cell, a reward table); every environment copy serves one user drawn
from the population for each episode and learns from that user's reward alone (all copies share
the network). Selection: the family evaluated at candidate conditions (the users' own distinct
parameters, at most --max-candidates of them, spread over the population) in greedy rollouts that
give the utility of every user at once; these rollouts count in --total-timesteps like every other
transition, so solvers compare at equal samples. The k members that maximize welfare on that
utility matrix are chosen by rmdp_envs.selection (exact DP for one-dimensional parameters, exact
MILP while small, else greedy plus swaps; the method is recorded in result.json). The deployed k
policies are the network with k fixed inputs (rmdp_train.policies.ConditionedActor), saved like
any k policies.

Run: ``python solvers/family_ppo.py --env-id rmdp/HalfCheetahSpeed-v0 --k 5 --total-timesteps 2000000``
"""

import math
import time
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.optim as optim
from tqdm import tqdm

import rmdp_envs
from rmdp_envs.selection import select_k
from rmdp_train.args import PPOArgs, RolloutMode, parse_args
from rmdp_train.checkpoint import TrainState
from rmdp_train.cli import fail
from rmdp_train.networks import MultiPolicyAgent
from rmdp_train.normalization import RunningMeanStd
from rmdp_train.policies import ConditionedActor
from rmdp_train.ppo import (advantages_and_returns, clipped_policy_loss, explained_variance, minibatch_order,
                            normalize_per_policy, per_policy, schedules, take, value_loss)
from rmdp_train.rollout import holds_observations
from rmdp_train.run import Run

SOLVER = "family"


@dataclass
class Args(PPOArgs):
    """Policy-family PPO (every shared flag is in rmdp_train.args.PPOArgs)."""

    #: its copies serve users drawn per episode, which the workers' rollout does not do
    rollouts: ClassVar[tuple[str, ...]] = ("main",)
    rollout: Optional[RolloutMode] = None
    """where the policies run while collecting: "main" only, this process (its copies serve users drawn per episode,
    which the workers' rollout does not do: "workers" is refused)"""

    max_candidates: int = 64
    """candidate conditions: the users' distinct parameters, or this many of them spread over the population"""
    selection_episodes: Optional[int] = None
    """greedy episodes per candidate in the selection rollouts (default: --eval-episodes)"""
    selection_seed: int = 50_000
    """reset seed of the first selection episode (apart from the evaluation and the board's seeds)"""


def normalized_params(params: np.ndarray) -> np.ndarray:
    """Users' parameters scaled to [-1, 1] per dimension (constant dimensions to 0): the family's condition."""
    low, high = params.min(axis=0), params.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return np.where(high > low, 2 * (params - low) / span - 1, 0.0).astype(np.float32)


def candidate_users(params: np.ndarray, max_candidates: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of users whose parameters are the candidates: every distinct one, or a spread subset."""
    _, first = np.unique(params, axis=0, return_index=True)
    first = np.sort(first)
    if len(first) <= max_candidates:
        return first
    if params.shape[1] == 1:  # evenly spaced quantiles of the sorted parameters
        ordered = first[np.argsort(params[first, 0], kind="stable")]
        return ordered[np.linspace(0, len(ordered) - 1, max_candidates).round().astype(int)]
    return np.sort(rng.choice(first, size=max_candidates, replace=False))


def conditioned(raw: np.ndarray, served: np.ndarray, obs_rms: RunningMeanStd, z: torch.Tensor) -> torch.Tensor:
    """Normalized observations with each copy's user condition appended: (E, obs_dim + d)."""
    return torch.cat([torch.as_tensor(obs_rms.normalize(raw), device=z.device), z[served]], dim=-1)


if __name__ == "__main__":
    args = parse_args(Args, __file__)
    run = Run(args, SOLVER, positive=dict(max_candidates=args.max_candidates, selection_episodes=args.selection_episodes),
              seeds=dict(selection_seed=args.selection_seed))
    k, m, n, env = args.k, args.num_envs, run.env.n, run.env
    if args.shared_torso:  # accepted and ignored before: the family network is one whatever the flag says
        fail("--shared-torso shapes the k policies of the other solvers; the family is one network for every user "
             "already (its k members differ only in their condition)")
    params = run.env.population.params.reshape(n, -1)
    z = normalized_params(params)  # (n, d)
    d = z.shape[1]
    selection_episodes = args.selection_episodes or args.eval_episodes
    probe = rmdp_envs.make(args.env_id, **run.env_kwargs)
    horizon = probe.spec.max_episode_steps or getattr(probe.unwrapped, "horizon", None)
    probe.close()
    rng, device = run.seed()
    cand = candidate_users(params, args.max_candidates, rng)
    if len(cand) < k:
        fail(f"--k {k}: the population has only {len(cand)} distinct parameter vectors to choose members from")
    run.check_evaluation_memory(len(cand), selection_episodes)  # every user's return under every candidate
    selection_budget = len(cand) * selection_episodes * horizon  # at most; the rollouts' real length is counted
    if args.total_timesteps - selection_budget < args.batch_size:
        fail(f"--total-timesteps {args.total_timesteps} leaves no training after the selection rollouts "
             f"(up to {selection_budget} transitions: {len(cand)} candidates x {selection_episodes} episodes x {horizon} steps)")
    args.num_iterations = math.ceil((args.total_timesteps - selection_budget) / args.batch_size)
    run.create_folder()

    # env setup: one policy (the family) on all k * m copies; copy e serves user users[e] this episode
    E = k * m
    envs = rmdp_envs.make_vector_env(args.env_id, 1, E, run.env_kwargs, num_workers=args.num_workers,
                                     main_share=args.main_share)
    obs_rms = RunningMeanStd((env.obs_dim,), enabled=args.norm_obs)
    agent = MultiPolicyAgent(1, env.obs_dim + d, env.out_dim, 1, args.hidden_size, False, env.discrete,
                             args.init_log_std).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=args.adam_eps, foreach=True)
    state = TrainState(modules={"actor": agent.actor, "critic": agent.critic}, optimizers={"optimizer": optimizer},
                       obs_rms=obs_rms, rng=rng, next_eval=args.eval_every, assignment=np.zeros(n, dtype=np.int64),
                       utility=np.zeros((1, n)),  # EMA of each user's own return when served (the training welfare)
                       seen=np.zeros(1, dtype=bool), extra={"users": rng.integers(n, size=E).tolist()})
    if run.resumed:
        state.load(run.dir)
        print(f"resumed {run.dir} at iteration {state.iteration}, {state.global_step} transitions")
    users = np.asarray(state.extra["users"], dtype=np.int64)
    zt = torch.as_tensor(z, device=device)
    writer = run.open_writer(state.global_step)

    T = args.num_steps
    act_shape = (T, E) if env.discrete else (T, E, env.act_dim)
    obs_buf = torch.zeros((T, E, env.obs_dim + d), device=device)
    actions_buf = torch.zeros(act_shape, device=device)
    logprobs_buf = torch.zeros((T, E), device=device)
    rewards_buf = torch.zeros((T, E, 1), device=device)
    ends_buf = torch.zeros((T, E), device=device)
    policy_of_env = torch.zeros(E, dtype=torch.long, device=device)
    held = np.zeros((T, E, env.obs_dim)) if holds_observations(args) else None  # --norm-obs-update rollout

    state.start_clock()
    start_step = state.global_step
    raw_obs, _ = envs.reset(seed=args.seed + 7919 * state.iteration)
    obs_rms.update(raw_obs)
    next_obs = conditioned(raw_obs, users, obs_rms, zt)
    progress = tqdm(total=args.num_iterations * args.batch_size, initial=state.global_step, unit="step",
                    mininterval=1.0, dynamic_ncols=True)
    iterations_this_process = 0
    while state.iteration < args.num_iterations:
        state.iteration += 1
        lr, ent_coef = schedules(args, state.iteration)
        optimizer.param_groups[0]["lr"] = lr

        # rollout: every copy serves its own user; a new user is drawn when its episode ends
        state.lap("learning")  # the time since the last rollout (result.json's phase_seconds)
        truncated_finals = []
        for step in range(T):
            state.global_step += E
            obs_buf[step] = next_obs
            with torch.no_grad():
                action, logprob = agent.get_action(next_obs.view(1, E, -1))
            actions_buf[step] = action.reshape(act_shape[1:])
            logprobs_buf[step] = logprob.reshape(E)
            env_action = action.reshape(act_shape[1:]).cpu().numpy()
            if not env.discrete:
                env_action = np.clip(env_action, env.action_low, env.action_high)
            raw_obs, reward, terminations, truncations, infos = envs.step(env_action)
            rewards_buf[step, :, 0] = torch.as_tensor(reward[np.arange(E), users], device=device)
            ends = terminations | truncations
            ends_buf[step] = torch.as_tensor(ends, device=device, dtype=torch.float32)
            if args.bootstrap_truncated:
                for e in np.flatnonzero(truncations & ~terminations):
                    truncated_finals.append((step, e, conditioned(infos["final_obs"][e][None], users[e:e + 1], obs_rms, zt)[0].cpu().numpy()))
            for e in np.flatnonzero(infos.get("_episode", np.zeros(E, dtype=bool))):
                u = users[e]
                r = infos["episode"]["r"][e, u]
                state.utility[0, u] = args.utility_ema * state.utility[0, u] + (1 - args.utility_ema) * r if state.seen[0] else r
                state.seen[0] = True
            users[ends] = rng.integers(n, size=int(ends.sum()))
            if held is None:
                obs_rms.update(raw_obs)
            else:
                held[step] = raw_obs
            next_obs = conditioned(raw_obs, users, obs_rms, zt)
        if held is not None:  # the rollout's observations at once; the next rollout starts from the new statistics
            obs_rms.update(held)
            next_obs = conditioned(raw_obs, users, obs_rms, zt)
        state.extra["users"] = users.tolist()
        state.lap("rollout")

        advantages, returns = advantages_and_returns(agent.critic, obs_buf, next_obs, rewards_buf, ends_buf,
                                                     truncated_finals, policy_of_env, 1, args.gamma, args.gae_lambda)
        b_obs, b_actions, b_logprobs = per_policy(obs_buf, 1), per_policy(actions_buf, 1), per_policy(logprobs_buf, 1)
        b_adv, b_returns = per_policy(advantages[..., 0], 1), per_policy(returns, 1)

        # PPO on the family: the same update as every other solver, with one policy
        torch.set_num_threads(args.update_threads)
        clipfracs, approx_kl = [], torch.zeros(())
        N, mb = T * E, T * E // args.num_minibatches
        for epoch in range(args.update_epochs):
            order = minibatch_order(rng, 1, N, device)
            for start in range(0, N, mb):
                idx = order[:, start:start + mb]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(take(b_obs, idx), take(b_actions, idx))
                logratio = newlogprob - take(b_logprobs, idx)
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = normalize_per_policy(take(b_adv, idx))
                pg_loss = clipped_policy_loss(mb_adv, ratio, args.clip_coef)
                v_loss = value_loss(newvalue, take(b_returns, idx))
                entropy_loss = entropy.mean(1).sum()
                loss = pg_loss - ent_coef * entropy_loss + args.vf_coef * v_loss

                optimizer.zero_grad()
                loss.backward()
                agent.clip_grad_norm_(args.max_grad_norm)
                optimizer.step()
            if args.target_kl and approx_kl > args.target_kl:
                break
        torch.set_num_threads(args.torch_threads)

        sps = int((state.global_step - start_step) / (time.time() - state.started))
        train_welfare = run.log_iteration(state, lr=lr, ent_coef=ent_coef, sps=sps, v_loss=v_loss.item(),
                                          pg_loss=pg_loss.item(), entropy=entropy_loss.item(), approx_kl=approx_kl.item(),
                                          clipfrac=float(np.mean(clipfracs)), flips=0, k=1,
                                          explained_var=explained_variance(advantages, returns))
        shown = f"{train_welfare:.4f}" if math.isfinite(train_welfare) else "pending"  # until episodes end
        progress.set_postfix(train_welfare=shown, sps=sps, refresh=False)  # shown by the update below
        progress.update(args.batch_size)
        iterations_this_process += 1
        run.checkpoint(state, iterations_this_process, progress)
    progress.close()
    envs.close()

    # selection: the family at every candidate condition, one rollout batch gives every user's utility
    sel_start = time.time()
    candidates = ConditionedActor(agent.actor, zt[cand].cpu())
    sel = rmdp_envs.evaluate(args.env_id, run.policy_set(candidates, obs_rms), len(cand), selection_episodes,
                             args.selection_seed, run.env_kwargs)
    state.global_step += int(sel.lengths.sum())
    chosen, method = select_k(sel.utility, k, user_params=params if d == 1 else None)
    members = ConditionedActor(agent.actor, zt[cand[chosen]].cpu())
    state.assignment = sel.utility[chosen].argmax(axis=0)  # each user to its best chosen member
    print(f"selected members {cand[chosen].tolist()} of {len(cand)} candidates by {method}: "
          f"welfare {sel.utility[chosen].max(axis=0).mean():.4f} on the selection rollouts")
    state.lap("learning", until=sel_start)
    state.lap("selection")

    eval_start = time.time()
    ev = run.record_eval(run.evaluate(members, obs_rms, state.assignment, device), state, eval_start)
    info = dict(selection_method=method, candidates=len(cand), selection_transitions=int(sel.lengths.sum()),
                member_users=cand[chosen].tolist(), member_params=params[cand[chosen]].tolist())
    run.write_result(ev, state, finished=True, **info)
    print(run.final_line(ev, state))
    if args.save_model:
        run.save_model(members, obs_rms, assignment=state.assignment.tolist(), **info)
    if args.capture_video:
        run.capture_video(members, obs_rms, state.assignment)
    writer.close()
