# docs: README.md "Solvers"; baseline of Ivanov & Ben-Porat, AAAI 2024 (random assignment); PPO after CleanRL ppo_continuous_action.py
"""Random-assignment PPO for r-MDPs: a random even split of the n users into k groups, fixed for the run.

The baseline that tells how much the learned assignments of em_ppo.py and e2e_ppo.py are worth:
the same k policies and PPO, but each policy serves a group drawn at random (from the seed) and
never changed. Policy p is trained on the mean advantage of its group's users.

Run: ``python solvers/random_ppo.py --env-id rmdp/ResourceGathering-v0 --k 5 --total-timesteps 2000000``
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.optim as optim
from tqdm import tqdm

import rmdp_envs
from rmdp_train.args import PPOArgs, parse_args
from rmdp_train.checkpoint import TrainState
from rmdp_train.networks import MultiPolicyAgent
from rmdp_train.normalization import RunningMeanStd
from rmdp_train.ppo import (advantages_and_returns, assignment_weights, clipped_policy_loss, explained_variance,
                            group_mean, minibatch_order, normalize_per_policy, per_policy, schedules, take, value_loss)
from rmdp_train.run import Run
from rmdp_train.rollout import make_sampler
from rmdp_train.users import UserTracker

SOLVER = "random"


@dataclass
class Args(PPOArgs):
    """Random-assignment PPO (every shared flag is in rmdp_train.args.PPOArgs; no flags of its own)."""


if __name__ == "__main__":
    args = parse_args(Args, __file__)
    run = Run(args, SOLVER)
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
    state = TrainState(modules={"actor": agent.actor, "critic": agent.critic}, optimizers={"optimizer": optimizer},
                       obs_rms=obs_rms, rng=rng, next_eval=args.eval_every,
                       assignment=rmdp_envs.round_robin(n, k)[rng.permutation(n)],  # random even split (sizes differ by <= 1), fixed
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

        # every user's advantages under each copy's policy; the advantage of policy p is the mean
        # advantage of the users assigned to p
        advantages, returns = advantages_and_returns(agent.critic, ro.obs, ro.next_obs, ro.rewards, ro.ends,
                                                     ro.truncated_finals, policy_of_env, k, args.gamma, args.gae_lambda)
        group_adv = group_mean(advantages, users.pool_weights(assignment_weights(state.assignment, k, device)), policy_of_env)
        b_obs, b_actions, b_logprobs = per_policy(ro.obs, k), per_policy(ro.actions, k), per_policy(ro.logprobs, k)
        b_adv, b_returns = per_policy(group_adv, k), per_policy(returns, k)

        # PPO on every policy at once, minibatches grouped per policy
        torch.set_num_threads(args.update_threads)
        clipfracs, approx_kl = [], torch.zeros(())
        for epoch in range(args.update_epochs):
            order = minibatch_order(rng, k, T * m, device)
            for start in range(0, T * m, args.minibatch_size):
                idx = order[:, start:start + args.minibatch_size]
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

        flips = 0  # fixed assignment

        # logging
        sps = int((state.global_step - start_step) / (time.time() - state.started))
        train_welfare = run.log_iteration(state, lr=lr, ent_coef=ent_coef, sps=sps, v_loss=v_loss.item(),
                                          pg_loss=pg_loss.item(), entropy=entropy_loss.item(), approx_kl=approx_kl.item(),
                                          clipfrac=float(np.mean(clipfracs)), flips=flips, k=k,
                                          explained_var=explained_variance(advantages, returns))
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
        run.save_model(agent.actor, obs_rms, assignment=state.assignment.tolist())
    if args.capture_video:
        run.capture_video(agent.actor, obs_rms, state.assignment)
    sampler.close()
    writer.close()
