"""The flags every solver shares (:class:`PPOArgs`) and the one table of per-environment defaults.

A solver's ``Args`` subclasses :class:`PPOArgs` and adds the flags of its assignment rule; tyro
turns the field docstrings of both into ``--help``. PPO flags left at ``None`` take the default
of the environment's family (:data:`ENV_DEFAULTS`), which the environment states itself in
``metadata["rmdp_family"]``: no environment id is spelled out here.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import multiprocessing as mp
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Optional, get_args

import tyro

import rmdp_envs
from rmdp_envs.files import CHECKPOINT_FILE
from rmdp_envs.results import usable_cores
from rmdp_train.cli import fail


#: ``--rollout`` choices (:func:`rmdp_train.rollout.make_sampler`).
RolloutMode = Literal["main", "workers"]
ROLLOUT_MODES: tuple[str, ...] = get_args(RolloutMode)

#: ``--norm-obs-update`` choices: when the observation statistics are updated.
NormObsUpdate = Literal["step", "rollout"]


_SMALL_DISCRETE = dict(num_envs=8, num_steps=64, learning_rate=5e-4, learning_rate_end=1e-4, adam_eps=1e-8, gamma=1.0,
                       num_minibatches=4, update_epochs=4, ent_coef=5e-2, ent_coef_end=1e-3, target_kl=0.0,
                       norm_obs=False, bootstrap_truncated=False, num_workers=0)

#: Defaults of the flags left at None, by the family an environment states in ``metadata["rmdp_family"]``.
#: gridworld (ResourceGathering): the authors' values (undiscounted, strong entropy bonus early on, no
#: observation normalization); a truncated trip pays nothing, so truncation is treated as an end; one
#: evaluation episode suffices (deterministic). tabular: the same, with 20 evaluation episodes
#: (stochastic transitions). mujoco and classic_control: the authors' PPO values, with fewer epochs (5, not 10) and
#: fewer, larger minibatches (4 per epoch, not 32) for throughput on a CPU; at 2M transitions on HalfCheetahSpeed that
#: update underfits (10 x 8 learns far more, at 0.70x the speed: benchmarks/results/update_cost_more/), kept because
#: the board's MuJoCo rows are trained with it.
ENV_DEFAULTS = {
    "gridworld": dict(_SMALL_DISCRETE, eval_episodes=1),
    "tabular": dict(_SMALL_DISCRETE, eval_episodes=20),
    "default": dict(
        num_envs=8, num_steps=256, learning_rate=3e-4, learning_rate_end=1e-4, adam_eps=1e-5, gamma=0.99,
        num_minibatches=4, update_epochs=5, ent_coef=1e-3, ent_coef_end=1e-4, target_kl=0.05, norm_obs=True,
        bootstrap_truncated=True, eval_episodes=4, num_workers=1),
}


#: How ``--help`` names the families of :data:`ENV_DEFAULTS` (the tasks each stands for).
FAMILY_NAMES = {"default": "MuJoCo and CartPole tasks", "gridworld": "ResourceGathering", "tabular": "tabular tasks"}


def _by_family(name: str) -> object:
    """tyro's ``(default: ...)`` of a flag whose default is its environment family's: the values by family, so
    ``--help`` shows numbers instead of ``None``."""
    values: dict[str, list[str]] = {}
    for family, defaults in ENV_DEFAULTS.items():
        value = defaults[name]
        values.setdefault(f"{value:g}" if isinstance(value, float) else str(value), []).append(FAMILY_NAMES[family])
    if len(values) == 1:
        return tyro.conf.arg(help_behavior_hint=f"(default: {next(iter(values))})")
    shown = "; ".join(f"{value} for {', '.join(families)}" for value, families in values.items())
    return tyro.conf.arg(help_behavior_hint=f"(default: {shown})")


#: The ``(default: ...)`` of the environment arguments left to the environment.
_THE_ENVS = tyro.conf.arg(help_behavior_hint="(default: the environment's)")

#: The ``(default: ...)`` of flags whose default the docstring explains.
_SEE_ABOVE = tyro.conf.arg(help_behavior_hint="(default: as said above)")


@dataclass
class PPOArgs:
    #: the ``--rollout`` modes this solver implements (a solver's ``Args`` narrows it; not a flag)
    rollouts: ClassVar[tuple[str, ...]] = ROLLOUT_MODES

    exp_name: Annotated[Optional[str], tyro.conf.arg(help_behavior_hint="(default: the solver file's name)")] = None
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment (networks, sampling, environment resets)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, the networks run on CUDA when available (environments always run on the CPU)"""
    torch_threads: int = 1
    """torch intra-op threads while rolling out; the 64-unit networks gain little from more, and the other core steps envs"""
    update_threads: Annotated[Optional[int], _SEE_ABOVE] = None
    """torch intra-op threads during the PPO update, when no environment is stepping (default: OMP_NUM_THREADS if set;
    else with --rollout workers the cores this process may use, at most 8, since the workers wait during the update,
    and with main 2). Several runs on one machine: set OMP_NUM_THREADS=1 (or this flag to 1), as the sweep does,
    or their updates' threads spin against each other (README "Cores")"""
    save_model: bool = False
    """whether to save the k policies (policies.safetensors + policies.json) in the run directory"""
    capture_video: bool = False
    """whether to film the final k policies side by side, one episode from --eval-seed, captioned with their users
    (videos/policies.gif in the run directory; MuJoCo renders through OpenGL, EGL where there is no display)"""
    track: bool = False
    """if toggled, the run's TensorBoard scalars and flags are also logged to Weights & Biases (CleanRL's flag; needs
    `pip install -e .[track]`, or `pip install wandb`; WANDB_MODE=offline keeps them on this machine)"""
    wandb_project_name: str = "rmdp"
    """the Weights & Biases project (with --track)"""
    wandb_entity: Optional[str] = None
    """the Weights & Biases team or user (with --track; default: your default entity)"""
    output_dir: str = "runs"
    """runs are written to `{output_dir}/{run_name}` (TensorBoard events, result.json, checkpoint)"""
    resume: Optional[str] = None
    """a run directory to continue from its last checkpoint, with the flags it started with (a flag given beside it
    with another value is refused). The continued run starts fresh episodes, so its numbers differ from one
    uninterrupted run's (result.json records resumed_at); the same stop resumed twice gives the same numbers"""
    eval_every: int = 0
    """evaluate and write result.json every this many transitions (0: only at the end)"""
    eval_episodes: Annotated[Optional[int], _by_family("eval_episodes")] = None
    """episodes per policy in each evaluation (ResourceGathering is deterministic: one suffices)"""
    eval_seed: int = 10_000
    """reset seed of the first evaluation episode (episode e uses eval_seed + e)"""
    checkpoint_every: int = 10
    """write a checkpoint every this many iterations (and at the end)"""
    interrupt_after: int = 0
    """testing aid: exit right after the first checkpoint (--checkpoint-every) at or after this many iterations of
    this process, as if killed (0: never)"""
    check_only: bool = False
    """check the flags, the environment and the memory the run needs, say so and exit (status 0) without writing
    anything: what `python -m leaderboard sweep --dry-run` asks of each solver before a grid runs"""

    # Environment arguments
    env_id: str = "rmdp/ResourceGathering-v0"
    """the id of the r-MDP environment"""
    k: int = 5
    """number of policies (the budget)"""
    n_agents: Annotated[Optional[int], _THE_ENVS] = None
    """number of users, for environments with a sampled population"""
    population: Annotated[Optional[str], _THE_ENVS] = None
    """population sampler: uniform, clusters or grid"""
    population_seed: Annotated[Optional[int], tyro.conf.arg(help_behavior_hint="(default: the environment's, 0)")] = None
    """seed of the population sampler"""
    env_kwargs: Optional[str] = None
    """further environment keyword arguments as a JSON object, e.g. '{"instance_seed": 3}'"""

    # PPO arguments (None: the default of the environment's family in ENV_DEFAULTS)
    total_timesteps: int = 2_000_000
    """environment transitions summed over all policies (solvers compare at equal samples); rounded up to whole
    iterations of k * num_envs * num_steps transitions (CleanRL rounds down). result.json records this request as
    total_timesteps and the transitions run as transitions (family: its member selection's episodes count at their
    real length, which may leave it a little under the request)"""
    num_envs: Annotated[Optional[int], _by_family("num_envs")] = None
    """environment copies per policy (k * num_envs copies step together)"""
    num_workers: Annotated[Optional[int], _SEE_ABOVE] = None
    """worker processes that step the copies (default: with --rollout workers, every core this process may use, up
    to one per copy; with --rollout main, 1 beside the main process for MuJoCo, 0 otherwise); 0 runs everything in
    this process"""
    main_share: Annotated[Optional[float], _SEE_ABOVE] = None
    """with workers, the fraction of the copies the main process steps beside running the policies (default:
    rmdp_envs.vector.default_main_share: an equal share up to 3 workers, none from 4 on); results do not depend on it"""
    rollout: Annotated[Optional[RolloutMode], _SEE_ABOVE] = None
    """where the policies run while collecting: "workers" (each of the --num-workers processes runs the policies on
    its own copies for a whole rollout while this process only learns; EM on HalfCheetahSpeed 23,356 transitions/s
    on 2 cores against 20,387 with "main" at one commit, docs/cores.md) or "main" (this process, one batched forward pass per
    step, beside the env workers). The same numbers bit for bit at equal --update-threads. Default: "workers" where
    the solver implements it, unless --num-workers 0 or --main-share asks for the main process"""
    num_steps: Annotated[Optional[int], _by_family("num_steps")] = None
    """steps per copy in each rollout"""
    learning_rate: Annotated[Optional[float], _by_family("learning_rate")] = None
    """initial learning rate of the actor and critic (annealed linearly to learning_rate_end)"""
    learning_rate_end: Annotated[Optional[float], _by_family("learning_rate_end")] = None
    """final learning rate"""
    adam_eps: Annotated[Optional[float], _by_family("adam_eps")] = None
    """epsilon of Adam"""
    gamma: Annotated[Optional[float], _by_family("gamma")] = None
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation"""
    num_minibatches: Annotated[Optional[int], _by_family("num_minibatches")] = None
    """minibatches per epoch; each holds the same number of transitions of every policy"""
    update_epochs: Annotated[Optional[int], _by_family("update_epochs")] = None
    """epochs of each PPO update (MuJoCo's 5 x 4 minibatches are set for throughput and underfit at 2M transitions;
    10 x 8 learns far more per transition at 0.70x the speed, every solver, the policy family most: README "Benchmarks")"""
    clip_coef: float = 0.2
    """PPO surrogate clipping coefficient"""
    ent_coef: Annotated[Optional[float], _by_family("ent_coef")] = None
    """initial entropy coefficient (annealed geometrically to ent_coef_end)"""
    ent_coef_end: Annotated[Optional[float], _by_family("ent_coef_end")] = None
    """final entropy coefficient: > 0 where ent_coef is (a geometric anneal to 0 would drop the bonus at once)"""
    vf_coef: float = 0.5
    """value-loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient-norm clip, applied to each policy (and its critic) separately"""
    target_kl: Annotated[Optional[float], _by_family("target_kl")] = None
    """stop the update's epochs once the mean approximate KL exceeds this (0: never)"""
    norm_obs: Annotated[Optional[bool], _by_family("norm_obs")] = None
    """running observation normalization, clipped to [-5, 5]"""
    norm_obs_update: NormObsUpdate = "step"
    """when the running observation statistics take in new observations: every step (Gymnasium's NormalizeObservation;
    with --rollout workers the workers then meet at a barrier every step to share them), or once per rollout, all of
    its observations at its end (frozen while it runs, so no worker waits for another: a different learner, compared
    in README "Cores")"""
    bootstrap_truncated: Annotated[Optional[bool], _by_family("bootstrap_truncated")] = None
    """bootstrap from the value of the last observation at time-limit truncations"""
    hidden_size: int = 64
    """units of the two tanh hidden layers of actor and critic"""
    shared_torso: bool = False
    """one torso shared by the k policies with k heads (the authors' choice) instead of k separate networks"""
    init_log_std: float = -1.0
    """initial log standard deviation of the Gaussian policies (continuous actions; learned)"""
    utility_ema: float = 0.95
    """EMA factor of the utility estimate U[p, i] built from episode returns of user i under policy p"""
    critic_bins: int = 128
    """the critic has one output per user up to this many users; larger populations are pooled into this many
    bins of similar users (quantiles of their first parameter), so memory does not grow with steps x copies x n"""

    # to be filled in runtime (CleanRL's fields, kept off the command line: a value typed there was ignored)
    batch_size: tyro.conf.Suppress[int] = 0
    """transitions per iteration, all policies (computed in runtime)"""
    minibatch_size: tyro.conf.Suppress[int] = 0
    """transitions of each policy per minibatch (computed in runtime)"""
    num_iterations: tyro.conf.Suppress[int] = 0
    """the number of iterations (computed in runtime)"""


#: Fields computed at run time, left out of ``args.json``.
RUNTIME_FIELDS = ("batch_size", "minibatch_size", "num_iterations")

def default_rollout(args: PPOArgs) -> str:
    """``--rollout`` left unset: ``workers`` (every core collects) where the solver implements it, unless the
    flags ask for the main process (``--num-workers 0``: no worker process; ``--main-share``: main's own flag), or
    the platform cannot start workers from a fork server (Windows), which a bare run then still does not need.

    Measured on the 2-core machine (``benchmarks/rollout_default.py``, ``rollout_default.json``, README "Cores"):
    EM's 300k-transition runs 1.13-1.32x faster than with the earlier default ``main``, the same welfare.
    """
    can_fork = "forkserver" in mp.get_all_start_methods()
    if "workers" in args.rollouts and args.num_workers != 0 and args.main_share is None and can_fork:
        return "workers"
    return "main"


def apply_env_defaults(args: PPOArgs) -> PPOArgs:
    """Fill the flags left at None: ``--rollout`` (:func:`default_rollout`), then the table row of the environment's
    family, and with ``--rollout workers`` ``--num-workers`` with the usable cores (the default uses the machine)."""
    try:
        family = rmdp_envs.env_metadata(args.env_id).get("rmdp_family")
    except ValueError as e:  # unknown id: check_run_args names it; fill generic defaults meanwhile
        family = None if "unknown env id" in str(e) else fail(e)
    defaults = ENV_DEFAULTS.get(family, ENV_DEFAULTS["default"])
    workers_unset = args.num_workers is None
    if args.rollout is None:
        args.rollout = default_rollout(args)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rollout == "workers" and workers_unset:  # every core collects; the numbers do not depend on how many
        args.num_workers = max(1, min(usable_cores(), args.k * args.num_envs))
    return args


#: What every solver's ``--help`` ends its description with: the problem's source, and where the shared flags live.
HELP_FOOTER = ("r-MDPs: Ivanov & Ben-Porat, Personalized Reinforcement Learning with a Budget of Policies, AAAI 2024 "
               "(arXiv 2401.06514). Flags shared by every solver: rmdp_train.args.PPOArgs; a default listed per family "
               "('... for ResourceGathering; ... for MuJoCo and CartPole tasks') is the one of the env's family.")


def solver_description(solver_file: str) -> str:
    """A solver's ``--help`` text: its module docstring (what it does and how to run it) and :data:`HELP_FOOTER`
    (tyro would show only the ``Args`` class's one line)."""
    doc = ast.get_docstring(ast.parse(Path(solver_file).read_text())) or ""
    return f"{doc}\n\n{HELP_FOOTER}".strip()


def parse_args(args_cls: type, solver_file: str) -> PPOArgs:
    """``tyro.cli(args_cls)``; with ``--resume RUN_DIR`` the run's saved arguments instead; then the env defaults."""
    args = tyro.cli(args_cls, description=solver_description(solver_file))
    if args.resume is not None:
        saved = resumable_args(args.resume, args_cls, Path(solver_file).stem)
        # the command line read again over the run's own flags: what it gives differs from them only where typed
        refuse_changed_flags(tyro.cli(args_cls, default=args_cls(**saved)), saved)
        args = args_cls(**{**saved, "resume": args.resume, "interrupt_after": args.interrupt_after,
                           "check_only": args.check_only})
    if args.exp_name is None:
        args.exp_name = Path(solver_file).stem
    return apply_env_defaults(args)


def refuse_changed_flags(given: PPOArgs, saved: dict) -> None:
    """A resumed run continues with the flags it started with: a flag given beside ``--resume`` with another value
    than the saved one fails (one ``error:`` line) instead of being ignored. ``given``: the command line parsed over
    the saved flags, so it differs from them only where a flag was typed (at its default value too);
    ``--interrupt-after`` belongs to the process, not the run."""
    changed = []
    for name, value in saved.items():
        if name not in ("resume", "interrupt_after", "check_only") and getattr(given, name) != value:
            changed.append(f"--{name.replace('_', '-')} {getattr(given, name)} (the run's: {value})")
    if changed:
        fail(f"--resume {given.resume} continues the run with the flags it started with; these differ: "
             f"{'; '.join(changed)}. Drop them, or start a new run")


def resumable_args(resume: str, args_cls: type, solver: str) -> dict:
    """The saved flags of the run folder ``resume``, after checking that this solver can continue it: both files
    there and readable, and every saved flag one of this solver's. A run of another solver fails (one ``error:``
    line naming it) instead of being finished by this one: its flags are not this solver's (extra ones), or it has
    none of the flags this solver adds to the shared ones (EM continuing a random-assignment run would otherwise
    take it over silently)."""
    from safetensors import safe_open  # noqa: PLC0415

    run_dir = Path(resume)
    if not (run_dir / "args.json").is_file() or not (run_dir / CHECKPOINT_FILE).is_file():
        fail(f"--resume {resume}: not a run directory with args.json and {CHECKPOINT_FILE}")
    try:
        saved = json.loads((run_dir / "args.json").read_text())
        with safe_open(str(run_dir / CHECKPOINT_FILE), framework="pt") as f:
            f.metadata()
    except Exception as e:  # JSON, safetensors' header, or the OS: every way the files can be unreadable
        fail(f"--resume {resume}: args.json or {CHECKPOINT_FILE} cannot be read ({type(e).__name__}: {e})")
    if not isinstance(saved, dict):
        fail(f"--resume {resume}: args.json is not a JSON object of flags")
    fields = {f.name for f in dataclasses.fields(args_cls)} - set(RUNTIME_FIELDS)
    own = fields - {f.name for f in dataclasses.fields(PPOArgs)}
    foreign = sorted(set(saved) - fields)
    if foreign or (own and not own & set(saved)):
        started_by = f"{saved.get('exp_name')!r}" if saved.get("exp_name") else "another solver"
        reason = (f"its flags {', '.join(foreign)} are not {solver}'s" if foreign else
                  f"it has none of {solver}'s own flags ({', '.join(sorted(own))})")
        fail(f"--resume {resume}: a run of {started_by}, not of {solver} ({reason}); continue it with the solver that "
             "started it")
    return saved


def saved_args(args: PPOArgs) -> dict:
    """What ``args.json`` holds: every flag as run, without the fields computed at run time."""
    return {key: value for key, value in asdict(args).items() if key not in RUNTIME_FIELDS}
