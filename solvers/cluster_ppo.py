# docs: README.md "Solvers"; baseline of Ivanov & Ben-Porat, AAAI 2024 (clustering); PPO after CleanRL ppo_continuous_action.py
"""Clustering PPO for r-MDPs: pretrain one policy for all users, cluster the users, train k policies.

Split of the budget (--total-timesteps counts every transition of both phases, as for the other
solvers): the first ``pretrain_fraction`` (default 1/3, the authors' split: max_iters/2 pretraining
then max_iters with k policies) trains a single policy on the summed reward of all n users over
all k * m copies. The rollout of the last pretraining iteration (batch_size transitions of the
pretrained policy; the authors roll out 10,000) gives each user a vector of per-step rewards;
scikit-learn's KMeans splits the users into k groups. The remaining budget trains k policies from
scratch (as the authors do) on that fixed assignment.

Run: ``python solvers/cluster_ppo.py --env-id rmdp/ResourceGathering-v0 --k 5 --total-timesteps 2000000``
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.optim as optim
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from rmdp_train.args import PPOArgs, parse_args
from rmdp_train.checkpoint import TrainState, load_checkpoint
from rmdp_train.cli import fail
from rmdp_train.networks import MultiPolicyAgent
from rmdp_train.normalization import RunningMeanStd
from rmdp_train.ppo import (advantages_and_returns, assignment_weights, clipped_policy_loss, explained_variance,
                            group_mean, minibatch_order, normalize_per_policy, per_policy, schedules, take, value_loss)
from rmdp_train.run import Run
from rmdp_train.rollout import make_sampler
from rmdp_train.users import UserTracker

SOLVER = "cluster"


@dataclass
class Args(PPOArgs):
    """Clustering PPO (every shared flag is in rmdp_train.args.PPOArgs)."""

    pretrain_fraction: float = 1 / 3
    """fraction of the iterations that pretrain the single policy (the rest trains the k clustered policies)"""


def cluster_users(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """KMeans(k) on the users' reward vectors (one row per user); no group is left empty.

    Deterministic under ties: identical reward vectors are clustered once, weighted by their count
    (users with the same rewards always share a group), on one thread (the result of k-means'
    parallel reductions can depend on the thread count).
    """
    unique, inverse, counts = np.unique(features, axis=0, return_inverse=True, return_counts=True)
    with threadpool_limits(limits=1):
        if len(unique) <= k:
            unique_labels = np.arange(len(unique))
        else:
            unique_labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(unique, sample_weight=counts)
    labels = np.asarray(unique_labels, dtype=np.int64)[inverse.reshape(-1)]
    for p in range(k):  # identical reward vectors can leave a cluster empty: move a user from the largest
        if not (labels == p).any():
            largest = np.bincount(labels, minlength=k).argmax()
            labels[np.flatnonzero(labels == largest)[-1]] = p
    return labels


def make_learner(run: Run, K: int, obs_rms: RunningMeanStd, device: torch.device):
    """Sampler (the env copies), user tracker, agent and optimizer of K policies on the k * m copies (K = 1 while pretraining)."""
    args, env = run.args, run.env
    # K policies x (k * m / K) copies, policy-major; critic rewards per user (or per bin of similar users when
    # n > --critic-bins); users' returns per episode
    copies = args.k * args.num_envs // K
    users = UserTracker(run.user_rewards, K, copies, args.utility_ema, run.user_bins())
    agent = MultiPolicyAgent(K, env.obs_dim, env.out_dim, users.outputs, args.hidden_size, args.shared_torso, env.discrete,
                             args.init_log_std).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=args.adam_eps, foreach=True)
    return make_sampler(args, run, K, copies, users, obs_rms, agent.actor, device), users, agent, optimizer


if __name__ == "__main__":
    args = parse_args(Args, __file__)
    run = Run(args, SOLVER)
    k, m, n, env = args.k, args.num_envs, run.env.n, run.env
    if not 0 < args.pretrain_fraction < 1:
        fail(f"--pretrain-fraction must lie in (0, 1), got {args.pretrain_fraction}")
    pretrain_iterations = max(1, round(args.pretrain_fraction * args.num_iterations))
    if args.num_iterations < pretrain_iterations + 1:
        fail(f"--total-timesteps {args.total_timesteps} gives {args.num_iterations} iterations of {args.batch_size} "
             f"transitions: too few for pretraining and clustered training")
    run.create_folder()
    rng, device = run.seed()

    obs_rms = RunningMeanStd((env.obs_dim,), enabled=args.norm_obs)  # shared by both phases
    # phase 1: one policy on all k * m copies; phase 2: k policies x m copies each
    phase = load_checkpoint(run.dir)[1]["extra"]["phase"] if run.resumed else 1
    K, copies = (1, k * m) if phase == 1 else (k, m)
    sampler, users, agent, optimizer = make_learner(run, K, obs_rms, device)
    state = TrainState(modules={"actor": agent.actor, "critic": agent.critic}, optimizers={"optimizer": optimizer},
                       obs_rms=obs_rms, rng=rng, next_eval=args.eval_every, extra={"phase": 1},
                       assignment=np.zeros(n, dtype=np.int64),  # every user on the single pretrained policy
                       utility=np.zeros((K, n)),  # U[p, i]: EMA of user i's episode returns under policy p
                       seen=np.zeros(K, dtype=bool))
    if run.resumed:
        state.load(run.dir)
        print(f"resumed {run.dir} at iteration {state.iteration}, {state.global_step} transitions")
    writer = run.open_writer(state.global_step)

    # the buffers of each rollout live in the sampler (rmdp_train.rollout)
    T, E = args.num_steps, k * m
    policy_of_env = torch.as_tensor(sampler.policy_index, device=device)

    state.start_clock()
    start_step = state.global_step
    sampler.reset(seed=args.seed + 7919 * state.iteration)  # a resumed run starts fresh episodes
    progress = tqdm(total=args.num_iterations * args.batch_size, initial=state.global_step, unit="step",
                    mininterval=1.0, dynamic_ncols=True)
    iterations_this_process = 0
    while state.iteration < args.num_iterations:
        state.iteration += 1
        # each phase anneals its own schedule: the fresh phase-2 policies start at the initial lr and entropy
        lr, ent_coef = (schedules(args, state.iteration, 1, pretrain_iterations) if phase == 1 else
                        schedules(args, state.iteration, pretrain_iterations + 1, args.num_iterations - pretrain_iterations))
        optimizer.param_groups[0]["lr"] = lr

        # rollout: every copy steps T times under its policy (rmdp_train.rollout)
        ro = sampler.collect(agent, state)

        # every user's advantages under each copy's policy; the advantage of policy p is the mean
        # advantage of the users assigned to p
        advantages, returns = advantages_and_returns(agent.critic, ro.obs, ro.next_obs, ro.rewards, ro.ends,
                                                     ro.truncated_finals, policy_of_env, K, args.gamma, args.gae_lambda)
        group_adv = group_mean(advantages, users.pool_weights(assignment_weights(state.assignment, K, device)), policy_of_env)
        b_obs, b_actions, b_logprobs = per_policy(ro.obs, K), per_policy(ro.actions, K), per_policy(ro.logprobs, K)
        b_adv, b_returns = per_policy(group_adv, K), per_policy(returns, K)

        # PPO on every policy at once, minibatches grouped per policy
        torch.set_num_threads(args.update_threads)
        clipfracs, approx_kl = [], torch.zeros(())
        N = T * copies
        mb = N // args.num_minibatches
        for epoch in range(args.update_epochs):
            order = minibatch_order(rng, K, N, device)
            for start in range(0, N, mb):
                idx = order[:, start:start + mb]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(take(b_obs, idx), take(b_actions, idx))
                logratio = newlogprob - take(b_logprobs, idx)
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = normalize_per_policy(take(b_adv, idx))
                pg_loss = clipped_policy_loss(mb_adv, ratio, args.clip_coef)  # each policy's loss as if alone
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

        # end of pretraining: cluster the users on the per-step rewards of this rollout, start k policies
        flips = 0
        if phase == 1 and state.iteration == pretrain_iterations:
            features = ro.rewards.reshape(T * E, users.outputs).T.cpu().numpy()  # (users or bins, transitions)
            state.assignment = users.bin_labels_to_users(cluster_users(features, k, args.seed))
            flips = int((state.assignment != 0).sum())
            phase, K, copies = 2, k, m
            sampler.close()
            sampler, users, agent, optimizer = make_learner(run, K, obs_rms, device)
            state.modules, state.optimizers = {"actor": agent.actor, "critic": agent.critic}, {"optimizer": optimizer}
            state.utility, state.seen, state.extra["phase"] = np.zeros((K, n)), np.zeros(K, dtype=bool), phase
            policy_of_env = torch.as_tensor(sampler.policy_index, device=device)
            sampler.reset(seed=args.seed + 7919 * state.iteration)
            progress.write(f"iteration {state.iteration}: clustered the users into groups of sizes "
                           f"{np.bincount(state.assignment, minlength=k).tolist()}")

        # logging
        sps = int((state.global_step - start_step) / (time.time() - state.started))
        train_welfare = run.log_iteration(state, lr=lr, ent_coef=ent_coef, sps=sps, v_loss=v_loss.item(),
                                          pg_loss=pg_loss.item(), entropy=entropy_loss.item(), approx_kl=approx_kl.item(),
                                          clipfrac=float(np.mean(clipfracs)), flips=flips, k=K,
                                          explained_var=explained_variance(advantages, returns))
        writer.add_scalar("charts/phase", phase, state.global_step)
        shown = f"{train_welfare:.4f}" if math.isfinite(train_welfare) else "pending"  # until episodes end
        progress.set_postfix(train_welfare=shown, sps=sps, flips=flips, refresh=False)  # shown by the update below
        progress.update(args.batch_size)

        if run.eval_due(state):
            eval_start = time.time()
            ev = run.record_eval(run.evaluate(agent.actor, obs_rms, state.assignment, device), state, eval_start)
            ev["utility"] = np.repeat(ev["utility"], k // K, axis=0)  # while pretraining: the one policy, k times
            run.write_result(ev, state, finished=False, phase=phase, pretrain_iterations=pretrain_iterations)
            progress.write(f"step {state.global_step}: eval welfare {ev['welfare']:.4f}, best response {ev['best_welfare']:.4f}")
        iterations_this_process += 1
        run.checkpoint(state, iterations_this_process, progress)
    progress.close()

    eval_start = time.time()
    ev = run.record_eval(run.evaluate(agent.actor, obs_rms, state.assignment, device), state, eval_start)
    ev["utility"] = np.repeat(ev["utility"], k // K, axis=0)
    run.write_result(ev, state, finished=True, phase=phase, pretrain_iterations=pretrain_iterations)
    print(run.final_line(ev, state))
    if args.save_model:
        run.save_model(agent.actor, obs_rms, assignment=state.assignment.tolist())
    if args.capture_video:
        run.capture_video(agent.actor, obs_rms, state.assignment)
    sampler.close()
    writer.close()
