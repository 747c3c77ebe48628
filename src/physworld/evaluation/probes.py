"""Linear state probes: does the dynamics' hidden state carry the true physical state, velocity included?

A probe is a ridge regression (closed form, no training loop) from a feature vector to the true state of a
frame (the scene's `STATE_NAMES` columns of `states.npy`), fitted on the train split and scored by R² per
state variable on a held-out split. A high R² for a velocity says the model tracks motion, not only where
things are.

Features: the ConvGRU's last-layer hidden state (Hc, h, w), flattened, after it has consumed frame t and the
action after it, i.e. the state the head turns into the prediction of frame t + 1; its target is the true
state of frame t + 1 (the frame it predicts). The hidden state, not the predicted latent, because the latent
is one frame's code (where things are, as the decoder draws them) while the hidden state is the model's
memory, the only place a velocity can live; it is also what the RL actor reads. The dynamics runs
teacher-forced over every stored frame (as in training), and every step t + 1 >= context_frames is a sample,
so a split of N sequences of T frames gives N (T - c) samples (the first of each sequence is the state after
exactly the context frames). Features wider than `max_features` (the full model's 192 x 8 x 8) are first
mapped to that many by a fixed Gaussian random projection (seeded, the same for the train and the scored
split): a linear probe of a linear map of the features is a linear probe of the features, so its R² is a lower
bound of the full probe's, at a cost that does not grow with the model. Beside it, the same probe on the VQ
latent of frame t + 1 itself (`probe_r2_latent`): what one encoded frame tells, the baseline the hidden state
has to beat on velocities.

Targets: angles (columns named `theta*`) become their sine and cosine (`sin_theta`, `cos_theta`), so a
wrap-around does not count as a large error. NaN states (objects absent from a sequence, e.g. multi_ball's
unused slots) drop out of the fit and the score of that column only; columns with no variance on the scored
split get R² NaN (dropped from metrics.json).

R² = 1 - sum (y - y_hat)² / sum (y - mean y)², per column on the scored split (its own mean): 1 is perfect,
0 is no better than the split's mean, below 0 worse.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from physworld.data.cache import ensure_split, load_split, read_manifest
from physworld.evaluation.scoring import to_frames

ANGLE_PREFIX = "theta"  # state columns named theta* are angles: probed as sine and cosine
PROJECTION_SEED = 0  # the random projection's generator seed: the same map for every split and run


class Probe(NamedTuple):
    """y_hat = x @ weight + bias, for features x (n, D) and targets (n, S)."""

    weight: np.ndarray  # (D, S)
    bias: np.ndarray  # (S,); NaN for a column that had nothing to fit


def probe_targets(states: np.ndarray, names) -> tuple[np.ndarray, list[str]]:
    """States (..., S) -> targets (..., S') and their names: each `theta*` column replaced by its sine and
    cosine, the others as they are."""
    columns, out_names = [], []
    for i, name in enumerate(names):
        value = np.asarray(states[..., i], np.float64)
        if name.startswith(ANGLE_PREFIX):
            columns += [np.sin(value), np.cos(value)]
            out_names += [f"sin_{name}", f"cos_{name}"]
        else:
            columns.append(value)
            out_names.append(name)
    return np.stack(columns, axis=-1), out_names


def fit_ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> Probe:
    """Ridge least squares from x (n, D) to y (n, S), each column on its finite rows only.

    The penalty is ridge times the trace of the centred Gram matrix over D (n times the mean feature
    variance), so the same `ridge` means the same for features of any scale and any number of samples.
    Closed form in float64: the primal normal equations when n >= D, the dual (kernel) form otherwise; columns
    sharing the same NaN rows share one solve."""
    if ridge <= 0:
        raise ValueError(f"ridge={ridge!r}: accepted a positive number")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    finite = np.isfinite(y)  # (n, S)
    d, s = x.shape[1], y.shape[1]
    weight, bias = np.zeros((d, s)), np.full(s, np.nan)
    groups: dict[bytes, list[int]] = {}
    for j in range(s):
        groups.setdefault(np.packbits(finite[:, j]).tobytes(), []).append(j)
    for cols in groups.values():
        rows = finite[:, cols[0]]
        if rows.sum() < 2:
            continue  # nothing to fit: the column stays NaN
        xr, yr = x[rows], y[rows][:, cols]
        xm, ym = xr.mean(0), yr.mean(0)
        xc, yc = xr - xm, yr - ym
        n = xc.shape[0]
        if n >= d:
            gram = xc.T @ xc  # (D, D)
            lam = ridge * np.trace(gram) / d
            w = np.linalg.solve(gram + lam * np.eye(d), xc.T @ yc)
        else:
            kernel = xc @ xc.T  # (n, n)
            lam = ridge * np.trace(kernel) / d
            w = xc.T @ np.linalg.solve(kernel + lam * np.eye(n), yc)
        weight[:, cols] = w
        bias[cols] = ym - xm @ w
    return Probe(weight, bias)


def predict(probe: Probe, x: np.ndarray) -> np.ndarray:
    """Predictions (n, S) for features x (n, D)."""
    return np.asarray(x, np.float64) @ probe.weight + probe.bias


def r2_scores(probe: Probe, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """R² (S,) of the probe on x (n, D), y (n, S), each column on its finite rows; NaN for a column with fewer
    than two finite rows or no variance."""
    y = np.asarray(y, np.float64)
    y_hat = predict(probe, x)
    scores = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j]) & np.isfinite(y_hat[:, j])
        if rows.sum() < 2:
            continue
        total = ((y[rows, j] - y[rows, j].mean()) ** 2).sum()
        if total > 1e-12 * max(1.0, (y[rows, j] ** 2).sum()):
            scores[j] = 1.0 - ((y[rows, j] - y_hat[rows, j]) ** 2).sum() / total
    return scores


def random_projection(d: int, size: int | None, device) -> torch.Tensor | None:
    """A fixed Gaussian map (D, size) / sqrt(size) (seeded: the same for every call), or None when the D
    features are no more than `size` (or size is None): they are used as they are."""
    if size is None or d <= size:
        return None
    generator = torch.Generator().manual_seed(PROJECTION_SEED)
    return (torch.randn(d, size, generator=generator) / size**0.5).to(device)


@torch.no_grad()
def probe_features(
    phase,
    arrays: dict,
    n: int,
    c: int,
    batch_size: int,
    device,
    max_features: int | None = None,
    latents: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Teacher-forced features of the first n sequences, for every frame t + 1 in c .. T - 1:
    {"hidden": (n (T - c), D_h), "latent": (n (T - c), D_z), "states": (n (T - c), S)} (float32), where D_h is
    Hc h w and D_z is C h w, each projected to `max_features` when wider (`random_projection`). `latents`: the
    quantized latents of these sequences' frames (>= n, T, C, h, w) where the caller has them, else encoded here."""
    frames, actions, states = arrays["frames"], arrays["actions"], arrays["states"]
    t_total = frames.shape[1]
    features: dict[str, list[torch.Tensor]] = {"hidden": [], "latent": []}
    maps: dict[str, torch.Tensor | None] = {}

    def keep(kind: str, x: torch.Tensor) -> None:  # x (B (T - c), D)
        if kind not in maps:
            maps[kind] = random_projection(x.shape[1], max_features, x.device)
        x = x.float() if maps[kind] is None else x.float() @ maps[kind]
        features[kind].append(x.cpu())

    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        a = torch.from_numpy(np.array(actions[rows])).to(device).float()  # (B, T, A)
        if latents is not None:
            z = latents[rows]  # (B, T, C, h, w)
        else:
            x = to_frames(frames[rows], device)  # (B, T, 3, H, W)
            z = phase.vqvae.encode(x.flatten(0, 1))[0].unflatten(0, x.shape[:2])
        state, steps = None, []
        for t in range(t_total - 1):
            state = phase.dynamics.advance(z[:, t], a[:, t], state)  # has seen frame t: predicts t + 1
            if t + 1 >= c:
                steps.append(state[-1].flatten(1))  # (B, Hc h w)
        keep("hidden", torch.stack(steps, 1).flatten(0, 1))  # (B (T - c), Hc h w)
        keep("latent", z[:, c:].flatten(2).flatten(0, 1))  # (B (T - c), C h w)
    target = np.asarray(states[:n, c:], np.float32).reshape(n * (t_total - c), -1)
    out = {kind: torch.cat(parts).numpy() for kind, parts in features.items()}
    return {**out, "states": target}


def fit_probes(
    phase, names, train: dict, n_train: int, c: int, ridge: float, max_features, batch_size, device
):
    """The hidden-state and latent probes fitted on the first n_train sequences of `train` (a split's arrays)
    for the state columns `names` -> ({"hidden": Probe, "latent": Probe}, the target names)."""
    fit = probe_features(phase, train, n_train, c, batch_size, device, max_features)
    y_fit, target_names = probe_targets(fit["states"], names)
    return {kind: fit_ridge(fit[kind], y_fit, ridge) for kind in ("hidden", "latent")}, target_names


def score_probes(
    phase,
    fitted: tuple[dict[str, Probe], list[str]],
    names,
    held_out: dict,
    n_eval: int,
    c: int,
    max_features: int | None,
    batch_size: int,
    device,
    latents: torch.Tensor | None = None,
) -> dict[str, dict[str, float]]:
    """Score the probes `fitted` (fit_probes' result) on the first n_eval sequences of `held_out` for the state
    columns `names` -> {"probe_r2": {name: R²}, "probe_r2_latent": {...}}, each with a "mean" entry (over the
    state variables with a finite R²). `latents`: the held-out sequences' quantized latents, where known."""
    probes, target_names = fitted
    test = probe_features(phase, held_out, n_eval, c, batch_size, device, max_features, latents)
    y_test, _ = probe_targets(test["states"], names)
    out = {}
    for key, feature in (("probe_r2", "hidden"), ("probe_r2_latent", "latent")):
        scores = r2_scores(probes[feature], test[feature], y_test)
        named = {name: float(v) for name, v in zip(target_names, scores)}
        finite = scores[np.isfinite(scores)]
        named["mean"] = float(finite.mean()) if finite.size else float("nan")
        out[key] = named
    return out


def probe_metrics(
    phase,
    dataset: dict,
    held_out: dict,
    n: int,
    c: int,
    settings,
    data_dir,
    seed: int,
    batch_size,
    device,
    fits: dict | None = None,
    latents: torch.Tensor | None = None,
) -> dict[str, float]:
    """`evaluation.probes` on one dataset: fitted on its train split (generated if missing, as training would),
    scored on the first n sequences of the evaluated split's arrays `held_out` -> {"probe_r2/<dataset>/<state>":
    R², ..., "probe_r2/<dataset>/mean", and the same under probe_r2_latent}; {} when off or without states.
    `fits`: a dict kept across the splits of one evaluation of one model, where each dataset's fit is stored
    and reused (the ood_test split is probed with the probes fitted for the test split: the fit reads only the
    train split). `latents`: the held-out sequences' quantized latents, where the caller has them."""
    if not settings.enabled or held_out.get("states") is None:
        return {}
    path = ensure_split(data_dir, dataset, "train", seed)
    # the names of the states' columns, as the split stored them (a scene's STATE_NAMES, recorded data's own)
    names = tuple(read_manifest(path).get("state_names", ()))
    if not names:
        return {}
    ridge, width = float(settings.ridge), settings.max_features
    key = (dataset["name"], str(path), c, settings.train_sequences, ridge, width)
    fits = {} if fits is None else fits
    if key not in fits:
        train = load_split(path)
        total = train["frames"].shape[0]
        n_train = total if settings.train_sequences is None else min(int(settings.train_sequences), total)
        fits[key] = fit_probes(phase, names, train, n_train, c, ridge, width, batch_size, device)
    scores = score_probes(phase, fits[key], names, held_out, n, c, width, batch_size, device, latents)
    return {
        f"{key}/{dataset['name']}/{name}": v for key, named in scores.items() for name, v in named.items()
    }
