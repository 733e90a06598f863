"""rmdp_train: what every solver in ``solvers/`` shares (needs the ``train`` extra: torch, tyro, ...).

Modules: :mod:`~rmdp_train.args` (the shared flags and the per-environment-family defaults),
:mod:`~rmdp_train.cli` (one-line errors for bad flags), :mod:`~rmdp_train.run` (run folder,
seeding, evaluation, logging, ``result.json``), :mod:`~rmdp_train.networks` (the k-policy agent),
:mod:`~rmdp_train.ppo` (GAE and the per-policy PPO loss pieces), :mod:`~rmdp_train.normalization`,
:mod:`~rmdp_train.checkpoint` (:class:`TrainState` with save/load), :mod:`~rmdp_train.policies`
(saving and loading policies: safetensors + JSON, no pickle). The E-step is
:func:`rmdp_envs.e_step`, shared with the exact solver.
"""
