import json

import numpy as np
import pytest

from rmdp_envs import Population


@pytest.mark.parametrize("kind", ["uniform", "clusters", "grid"])
def test_population_round_trips_through_json(kind):
    pop = Population.sample(kind, 37, -1.0, 2.5, seed=11)
    again = Population.from_dict(json.loads(json.dumps(pop.to_dict())))
    assert again == pop
    np.testing.assert_array_equal(again.params, pop.params)
    assert again.n == 37 and again.params.shape == (37, 1) and again.kind == kind


@pytest.mark.parametrize("kind", ["uniform", "clusters", "grid"])
def test_samples_stay_in_the_interval_and_are_seeded(kind):
    a = Population.sample(kind, 200, 0.0, 4.0, seed=1)
    b = Population.sample(kind, 200, 0.0, 4.0, seed=1)
    assert a == b
    assert a.params.min() >= 0.0 and a.params.max() <= 4.0


def test_seeds_change_uniform_samples_but_not_grid():
    assert Population.sample("uniform", 10, 0, 1, seed=1) != Population.sample("uniform", 10, 0, 1, seed=2)
    np.testing.assert_array_equal(Population.sample("grid", 10, 0, 1, seed=1).params,
                                  Population.sample("grid", 10, 0, 1, seed=2).params)


def test_grid_is_evenly_spaced():
    np.testing.assert_allclose(Population.sample("grid", 4, 0, 4).params[:, 0], [0.5, 1.5, 2.5, 3.5])


def test_clusters_are_tight_groups_with_known_labels():
    pop = Population.sample("clusters", 90, 0.0, 4.0, seed=0, n_clusters=3)
    labels = np.asarray(pop.meta["labels"])
    centres = np.asarray(pop.meta["centres"])
    assert np.all(np.abs(pop.params[:, 0] - centres[labels]) <= pop.meta["cluster_width"] + 1e-12)


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "uniform", "n": 0}, "n must be an integer >= 1"),
    ({"kind": "uniform", "n": 5, "low": 2.0, "high": 1.0}, "low < high"),
    ({"kind": "uniform", "n": 5, "low": 1.0, "high": 1.0}, "low < high"),
    ({"kind": "gaussian", "n": 5}, "unknown population kind 'gaussian'"),
    ({"kind": "clusters", "n": 5, "n_clusters": 0}, "n_clusters"),
    ({"kind": "uniform", "n": True}, "n must be an integer >= 1, got True"),  # not read as one user
    ({"kind": "uniform", "n": "10"}, "got '10'"),
    ({"kind": "uniform", "n": 5, "seed": -1}, "population seed must be an integer >= 0"),
])
def test_bad_sampler_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Population.sample(**kwargs)


def test_bad_params_raise():
    with pytest.raises(ValueError, match="NaN"):
        Population(params=np.array([1.0, np.nan]), kind="x")
    with pytest.raises(ValueError, match="missing keys"):
        Population.from_dict({"kind": "uniform"})
