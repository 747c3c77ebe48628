"""State probes (evaluation/probes.py): ridge fits and R² on synthetic latents whose answer is known, NaN and
angle handling, and the probes in a real evaluation."""

import numpy as np
import pytest

from physworld.evaluation.probes import fit_ridge, predict, probe_targets, r2_scores


def synthetic(rng, n: int, d: int = 40, s: int = 3, noise: float = 0.01):
    """States (n, s) and latents (n, d) = states @ mixing + small noise: linearly decodable."""
    states = rng.normal(size=(n, s))
    mixing = rng.normal(size=(s, d))
    latents = states @ mixing + noise * rng.normal(size=(n, d)) + 5.0  # an offset the probe must absorb
    return latents, states, mixing


def test_probe_recovers_a_linearly_encoded_state():
    rng = np.random.default_rng(0)
    x, y, mixing = synthetic(rng, 600)
    x_test = rng.normal(size=(300, 3)) @ mixing + 0.01 * rng.normal(size=(300, 40)) + 5.0
    y_test = np.linalg.lstsq(mixing.T, (x_test - 5.0).T, rcond=None)[0].T  # the states behind x_test
    probe = fit_ridge(x, y, ridge=1e-6)
    scores = r2_scores(probe, x_test, y_test)
    assert scores.shape == (3,)
    assert np.all(scores > 0.999), scores


def test_probe_on_a_random_latent_scores_near_zero():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2000, 2))
    x = rng.normal(size=(2000, 20))  # independent of the state
    probe = fit_ridge(x[:1000], y[:1000], ridge=1e-3)
    scores = r2_scores(probe, x[1000:], y[1000:])
    assert np.all(np.abs(scores) < 0.05), scores


def test_dual_form_when_features_outnumber_samples_matches_the_primal():
    rng = np.random.default_rng(2)
    x, y, _ = synthetic(rng, 30, d=80)
    dual = fit_ridge(x, y, ridge=0.1)  # n < D: kernel form
    xc, yc = x - x.mean(0), y - y.mean(0)
    lam = 0.1 * np.trace(xc.T @ xc) / x.shape[1]
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    np.testing.assert_allclose(dual.weight, w, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(predict(dual, x), xc @ w + y.mean(0), rtol=1e-6, atol=1e-9)


def test_nan_rows_drop_out_of_their_column_only():
    rng = np.random.default_rng(3)
    x, y, mixing = synthetic(rng, 400)
    y_nan = y.copy()
    y_nan[::2, 2] = np.nan  # an object absent in half the samples: only column 2 loses them
    y_nan[:, 1] = np.nan  # an object never present: nothing to fit
    probe = fit_ridge(x, y_nan, ridge=1e-6)
    assert np.isnan(probe.bias[1]) and np.isfinite(probe.bias[[0, 2]]).all()
    full = fit_ridge(x, y, ridge=1e-6)
    half = fit_ridge(x[1::2], y[1::2], ridge=1e-6)
    np.testing.assert_allclose(probe.weight[:, 0], full.weight[:, 0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(probe.weight[:, 2], half.weight[:, 2], rtol=1e-8, atol=1e-10)
    scores = r2_scores(probe, x, y_nan)
    assert np.isnan(scores[1]) and scores[0] > 0.999 and scores[2] > 0.999


def test_constant_column_has_no_r2_and_bad_ridge_fails():
    rng = np.random.default_rng(4)
    x, y, _ = synthetic(rng, 100)
    y[:, 0] = 3.0
    assert np.isnan(r2_scores(fit_ridge(x, y, 1e-3), x, y)[0])
    with pytest.raises(ValueError, match="ridge=0"):
        fit_ridge(x, y, 0)


def test_angles_become_sine_and_cosine():
    states = np.array([[np.pi, 2.0], [0.5, -1.0]])
    targets, names = probe_targets(states, ("theta", "omega"))
    assert names == ["sin_theta", "cos_theta", "omega"]
    np.testing.assert_allclose(targets, [[0.0, -1.0, 2.0], [np.sin(0.5), np.cos(0.5), -1.0]], atol=1e-12)


def test_evaluation_reports_a_probe_r2_per_state_variable(pred_eval):
    from physworld.data.scenes.pendulum import STATE_NAMES

    _, metrics = pred_eval
    _, names = probe_targets(np.zeros((1, len(STATE_NAMES))), STATE_NAMES)
    assert names[:2] == ["sin_theta", "cos_theta"]
    for key in ("probe_r2", "probe_r2_latent"):
        scores = [metrics[f"test/{key}/pendulum/{name}"] for name in names]
        assert all(np.isfinite(scores)) and max(scores) <= 1.0
        assert metrics[f"test/{key}/pendulum/mean"] == pytest.approx(np.mean(scores))
        assert metrics[f"test/{key}/mean"] == metrics[f"test/{key}/pendulum/mean"]  # the mean over datasets
    assert not any("counterfactual" in k for k in metrics)  # goal_reach only


def test_random_projection_keeps_a_linear_state_decodable():
    import torch

    from physworld.evaluation.probes import random_projection

    assert random_projection(64, 128, "cpu") is None and random_projection(64, None, "cpu") is None
    p = random_projection(3000, 200, "cpu")
    assert p.shape == (3000, 200) and torch.equal(p, random_projection(3000, 200, "cpu"))  # fixed: seeded
    rng = np.random.default_rng(5)
    x, y, mixing = synthetic(rng, 1000, d=3000, noise=0.01)
    x_test = rng.normal(size=(300, 3)) @ mixing + 0.01 * rng.normal(size=(300, 3000)) + 5.0
    y_test = np.linalg.lstsq(mixing.T, (x_test - 5.0).T, rcond=None)[0].T
    pm = p.double().numpy()
    scores = r2_scores(fit_ridge(x @ pm, y, 1e-6), x_test @ pm, y_test)
    assert np.all(scores > 0.99), scores


def test_probes_on_projected_features_and_switched_off(pred_run, pred_eval, tmp_path):
    from physworld.evaluation.evaluate import evaluate_run

    _, full = pred_eval
    _, projected = evaluate_run(
        pred_run, ["evaluation.probes.max_features=64", f"output_dir={tmp_path / 'p'}"], "last.ckpt"
    )
    keys = [k for k in full if k.startswith("test/probe_r2/pendulum/")]
    assert keys and all(np.isfinite(projected[k]) and projected[k] <= 1.0 for k in keys)
    assert any(projected[k] != full[k] for k in keys)  # 16 x 8 x 8 hidden features, mapped to 64
    for k in full:  # every other score stays as it was
        if "probe_r2" not in k:
            assert projected[k] == pytest.approx(full[k], rel=1e-6, abs=1e-9), k
    _, off = evaluate_run(
        pred_run, ["evaluation.probes.enabled=false", f"output_dir={tmp_path / 'o'}"], "last.ckpt"
    )
    assert not any("probe_r2" in k for k in off) and len(off) == len(full) - len(
        [k for k in full if "probe_r2" in k]
    )


def test_probes_are_fitted_once_per_dataset_and_reuse_the_splits_encodings(pred_run, monkeypatch):
    import torch
    from omegaconf import OmegaConf

    from physworld.data.cache import load_split
    from physworld.data.plan import datasets_for
    from physworld.evaluation import probes
    from physworld.evaluation.scoring import score_reconstruction
    from physworld.phases.checkpoints import load_phase

    phase, _ = load_phase(str(pred_run / "checkpoints" / "last.ckpt"))
    phase.eval()
    cfg = OmegaConf.load(pred_run / ".hydra" / "config.yaml")
    (dataset,) = datasets_for(cfg)
    data_dir, seed = cfg.paths.data_dir, int(cfg.data.seed)
    held_out = load_split(probes.ensure_split(data_dir, dataset, "test", seed))
    settings = OmegaConf.create({"enabled": True, "train_sequences": 8, "ridge": 0.01, "max_features": 2048})
    args = (phase, dataset, held_out, 8, 2, settings, data_dir, seed, 4, torch.device("cpu"))
    fresh = probes.probe_metrics(*args)  # fitted and encoded here

    fitted = []
    fit = probes.fit_probes
    monkeypatch.setattr(probes, "fit_probes", lambda *a: fitted.append(1) or fit(*a))
    fits: dict = {}
    latents = score_reconstruction(phase, held_out, {}, "pendulum", 8, 4, torch.device("cpu"), 2)[3][0]
    assert latents.shape[:2] == (8, held_out["frames"].shape[1])
    first = probes.probe_metrics(*args, fits, latents)
    second = probes.probe_metrics(*args, fits, latents)  # as for the ood_test split: the same fit
    assert len(fitted) == 1 and len(fits) == 1
    assert first == second and first.keys() == fresh.keys()
    for key, value in fresh.items():  # the split's encodings from the reconstruction pass: the same features
        assert first[key] == pytest.approx(value, abs=1e-5), key
