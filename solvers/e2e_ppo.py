# docs: README.md "Solvers"; algorithm: Ivanov & Ben-Porat, AAAI 2024 (end-to-end solver); PPO after CleanRL ppo_continuous_action.py
"""End-to-end PPO for r-MDPs: k policies and a learnable soft assignment, trained jointly by gradient descent.

A k x n matrix of logits; its softmax over policies gives each user's weights w[p, i] on the k
policies. Policy p's PPO advantage is the w[p]-weighted mean of the users' advantages. The logits
follow the gradient of the soft social welfare SW(w) = (1/n) sum_{p,i} w[p, i] U[p, i], whose
derivative in w[p, i] is user i's estimated value U[p, i] under policy p (the EMA of its episode
returns): one Adam step per iteration (own learning rate), on U standardized so the step size does
not depend on the reward scale. So the soft assignment moves toward each user's best policy, and
its argmax (the hard assignment) toward the best response. (Backpropagating the PPO loss into the
logits instead, as a first version did, gives no signal: the per-policy standardization of the
advantages cancels the weights' scale, and what remains is not the welfare gradient.)

Run: ``python solvers/e2e_ppo.py --env-id rmdp/ResourceGathering-v0 --k 5 --total-timesteps 2000000``
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from tqdm import tqdm

from rmdp_train.args import PPOArgs, parse_args
from rmdp_train.checkpoint import TrainState
from rmdp_train.networks import MultiPolicyAgent
from rmdp_train.normalization import RunningMeanStd
from rmdp_train.ppo import (advantages_and_returns, clipped_policy_loss, explained_variance, minibatch_order,
                            normalize_per_policy, per_policy, schedules, take, value_loss)
from rmdp_train.run import Run
from rmdp_train.rollout import make_sampler
from rmdp_train.users import UserTracker

SOLVER = "e2e"


@dataclass
class Args(PPOArgs):
    """End-to-end PPO (every shared flag is in rmdp_train.args.PPOArgs)."""

    assignment_lr: float = 0.05
    """learning rate of the assignment logits (Adam, one step per iteration on the welfare gradient)"""
    assignment_init_std: float = 1.0
    """standard deviation of the normal initial assignment logits"""


if __name__ == "__main__":
    args = parse_args(Args, __file__)
    run = Run(args, SOLVER, positive=dict(assignment_lr=args.assignment_lr),
              non_negative=dict(assignment_init_std=args.assignment_init_std))
    k, m, n, env = args.k, args.num_envs, run.env.n, run.env
    run.create_folder()
    rng, device = run.seed()

    # env setup: k policies x m copies, policy-major (copy c of policy j is sub-env j * m + c)
    # critic rewards per user (or per bin of similar users when n > --critic-bins); users' returns per episode
    bins = run.user_bins()
    users = UserTracker(run.user_rewards, k, m, args.utility_ema, bins)
    obs_rms = RunningMeanStd((env.obs_dim,), enabled=args.norm_obs)
    agent = MultiPolicyAgent(k, env.obs_dim, env.out_dim, users.outputs, args.hidden_size, args.shared_torso, env.discrete,
                             args.init_log_std).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=args.adam_eps, foreach=True)
    # the soft assignment: weights[p, i] = softmax over policies of logits[:, i]
    assignment_logits = nn.Parameter(args.assignment_init_std * torch.randn(k, n).to(device))
    assignment_optimizer = optim.Adam([assignment_logits], lr=args.assignment_lr)
    state = TrainState(modules={"actor": agent.actor, "critic": agent.critic}, obs_rms=obs_rms, rng=rng,
                       optimizers={"optimizer": optimizer, "assignment_optimizer": assignment_optimizer},
                       tensors={"assignment_logits": assignment_logits}, next_eval=args.eval_every,
                       assignment=assignment_logits.detach().argmax(0).cpu().numpy(),  # the hard assignment
                       utility=np.zeros((k, n)),  # U[p, i]: EMA of user i's episode returns under policy p
                       seen=np.zeros(k, dtype=bool))
    if run.resumed:
        state.load(run.dir)
        print(f"resumed {run.dir} at iteration {state.iteration}, {state.global_step} transitions")
    writer = run.open_writer(state.global_step)

    # the env copies and where the policies run on them (--rollout); its buffers hold each rollout
    sampler = make_sampler(args, run, k, m, users, obs_rms, agent.actor, device)
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
        lr, ent_coef = schedules(args, state.iteration)
        optimizer.param_groups[0]["lr"] = lr

        # rollout: every copy steps T times under its policy (rmdp_train.rollout)
        ro = sampler.collect(agent, state)

        # every user's advantages under each copy's policy
        advantages, returns = advantages_and_returns(agent.critic, ro.obs, ro.next_obs, ro.rewards, ro.ends,
                                                     ro.truncated_finals, policy_of_env, k, args.gamma, args.gae_lambda)
        b_obs, b_actions, b_logprobs = per_policy(ro.obs, k), per_policy(ro.actions, k), per_policy(ro.logprobs, k)
        b_gae, b_returns = per_policy(advantages, k), per_policy(returns, k)  # (k, T * m, n)

        # PPO on every policy, minibatches grouped per policy; the soft assignment is fixed during it
        weights = users.pool_weights(torch.softmax(assignment_logits.detach(), dim=0))  # (k, n): columns sum to 1 (per bin at large n)
        torch.set_num_threads(args.update_threads)
        clipfracs, approx_kl = [], torch.zeros(())
        for epoch in range(args.update_epochs):
            order = minibatch_order(rng, k, T * m, device)
            for start in range(0, T * m, args.minibatch_size):
                idx = order[:, start:start + args.minibatch_size]
                # policy p's advantage: the users' advantages weighted by the soft assignment
                mb_adv = (take(b_gae, idx) * weights.unsqueeze(1)).mean(-1)  # (k, mb)
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(take(b_obs, idx), take(b_actions, idx))
                logratio = newlogprob - take(b_logprobs, idx)
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = normalize_per_policy(mb_adv)
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

        # the soft assignment follows the welfare gradient dSW/dw[p, i] = U[p, i] (standardized)
        if state.seen.all():
            utility = torch.as_tensor(state.utility, dtype=torch.float32, device=device)
            utility = (utility - utility.mean(0, keepdim=True)) / (utility.std() + 1e-8)
            assignment_optimizer.zero_grad()
            (-(torch.softmax(assignment_logits, dim=0) * utility).sum(0).mean()).backward()
            assignment_optimizer.step()
        # the hard assignment: each user's highest-weight policy
        old = state.assignment
        state.assignment = assignment_logits.detach().argmax(0).cpu().numpy()
        flips = int((state.assignment != old).sum())

        # logging
        sps = int((state.global_step - start_step) / (time.time() - state.started))
        train_welfare = run.log_iteration(state, lr=lr, ent_coef=ent_coef, sps=sps, v_loss=v_loss.item(),
                                          pg_loss=pg_loss.item(), entropy=entropy_loss.item(), approx_kl=approx_kl.item(),
                                          clipfrac=float(np.mean(clipfracs)), flips=flips, k=k,
                                          explained_var=explained_variance(advantages, returns))
        with torch.no_grad():
            weights = torch.softmax(assignment_logits, dim=0)
            writer.add_scalar("assignment/weight_entropy", -(weights * weights.clamp(min=1e-12).log()).sum(0).mean().item(),
                              state.global_step)
        shown = f"{train_welfare:.4f}" if math.isfinite(train_welfare) else "pending"  # until episodes end
        progress.set_postfix(train_welfare=shown, sps=sps, flips=flips, refresh=False)  # shown by the update below
        progress.update(args.batch_size)

        if run.eval_due(state):
            eval_start = time.time()
            ev = run.record_eval(run.evaluate(agent.actor, obs_rms, state.assignment, device), state, eval_start)
            run.write_result(ev, state, finished=False)
            progress.write(f"step {state.global_step}: eval welfare {ev['welfare']:.4f}, best response {ev['best_welfare']:.4f}")
        iterations_this_process += 1
        run.checkpoint(state, iterations_this_process, progress)
    progress.close()

    eval_start = time.time()
    ev = run.record_eval(run.evaluate(agent.actor, obs_rms, state.assignment, device), state, eval_start)
    run.write_result(ev, state, finished=True)
    print(run.final_line(ev, state))
    if args.save_model:
        run.save_model(agent.actor, obs_rms, assignment=state.assignment.tolist(),
                       assignment_weights=torch.softmax(assignment_logits, 0).tolist())
    if args.capture_video:
        run.capture_video(agent.actor, obs_rms, state.assignment)
    sampler.close()
    writer.close()
