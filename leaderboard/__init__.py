"""rmdp leaderboard: verified submissions, rendered tables and plots, and sweeps (``python -m leaderboard``).

Modules: :mod:`~leaderboard.protocol` (the versioned evaluation protocol and tolerances),
``schema.json`` (the submission format), :mod:`~leaderboard.submit` (checks and re-evaluation),
:mod:`~leaderboard.storage` (the board on disk, atomic writes), :mod:`~leaderboard.references`
(W_random and W_upper), :mod:`~leaderboard.render` (README and site), :mod:`~leaderboard.sweep`
(grids of solver runs, locally or on Ray).
"""

from leaderboard.protocol import PROTOCOL, Protocol, Tolerance
from leaderboard.submit import SubmissionError, submit

__all__ = ["PROTOCOL", "Protocol", "SubmissionError", "Tolerance", "submit"]
