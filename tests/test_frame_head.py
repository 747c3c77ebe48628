"""The frame head (models/frame_head.py: a predicted frame as the last real frame moved by a flow), the losses
that train it (phases/losses.py) and the foreground-area ratio that counts ghosts and fades (metrics/rollout.py)."""

from __future__ import annotations

import json

import pytest
import torch

from physworld.metrics.rollout import RolloutScorer, foreground_area
from physworld.models.frame_head import FrameHead, warp
from physworld.phases.losses import flow_smoothness, photometric_loss
from tests.conftest import run, tiny_run


def disc(cx: float, cy: float, radius: float, colour=(0.9, 0.3, 0.6), background=0.05, n: int = 1):
    """(n, 3, 64, 64) frames with a disc of `colour` whose centre is at pixel coordinates (cx, cy) (pixel (i, j)
    has its centre at (j + 0.5, i + 0.5))."""
    yy, xx = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2).float()
    frame = background + inside * (torch.tensor(colour)[:, None, None] - background)
    return frame.expand(n, 3, 64, 64).clone()


@pytest.mark.parametrize("output", ["warp", "composite"])
@pytest.mark.parametrize(
    "sampling,flow_grid", [("bilinear", 1), ("bicubic", 1), ("nearest", 1), ("bilinear", 4)]
)
def test_frame_head_at_initialisation_reproduces_copy_last_exactly(output, sampling, flow_grid):
    torch.manual_seed(0)
    head = FrameHead(16, (8, 12), output, sampling, flow_grid)
    last = torch.rand(2, 3, 64, 64)
    out = head(torch.randn(2, 4, 16, 8, 8), torch.randn(2, 16, 8, 8), last)
    assert out.frames.shape == (2, 4, 3, 64, 64) and out.flow.shape == (2, 4, 2, 64, 64)
    assert torch.equal(out.frames, last[:, None].expand_as(out.frames))  # bit for bit, at every horizon
    assert (out.mask is None) == (output == "warp")


def test_frame_head_learns_through_its_zero_start():
    """The zero-initialised output conv still gets a gradient, for the flow and (composite) the mask."""
    torch.manual_seed(0)
    head = FrameHead(16, (8, 12), "composite", "bilinear")
    last = disc(20.0, 30.0, 4.0, n=2)
    out = head(torch.randn(2, 1, 16, 8, 8), torch.randn(2, 16, 8, 8), last)
    (out.frames - disc(23.0, 30.0, 4.0, n=2)[:, None]).abs().mean().backward()
    grad = head.out.weight.grad
    assert grad[:2].abs().sum() > 0  # the flow's channels
    assert grad[5].abs().sum() > 0  # the mask's logit: clamp(0, 1) passes the gradient at exactly 0


def test_warp_by_a_whole_pixel_flow_moves_a_disc_there():
    frame = disc(20.5, 30.5, 4.0)
    # backward flow: the prediction at p is the frame at p + flow, so a flow of (-6, +3) moves the disc by (+6, -3)
    flow = torch.tensor([-6.0, 3.0]).view(1, 2, 1, 1).expand(1, 2, 64, 64)
    for mode in ("bilinear", "bicubic", "nearest"):
        moved = warp(frame, flow, mode)
        torch.testing.assert_close(moved, disc(26.5, 27.5, 4.0), atol=1e-5, rtol=0)


def test_nearest_warp_copies_whole_pixels_and_passes_bilinears_gradient():
    """A fractional shift: nearest sampling draws only values of the frame (no blurred mixes of two pixels),
    while the flow gets bilinear's gradient (a nearest sample's own is zero)."""
    frame = disc(20.5, 30.5, 4.0)
    flow = torch.full((1, 2, 64, 64), 0.4, requires_grad=True)
    values = frame.unique()
    off = lambda x: (x.flatten()[:, None] - values[None]).abs().min(1).values.max()  # noqa: E731 (farthest value)
    moved = warp(frame, flow, "nearest")
    assert (
        off(moved) < 1e-6
    )  # (up to rounding: the straight-through sum adds and takes away bilinear's value)
    assert off(warp(frame, flow.detach(), "bilinear")) > 0.1
    moved.sum().backward()
    nearest_grad = flow.grad.clone()
    flow.grad = None
    warp(frame, flow, "bilinear").sum().backward()
    torch.testing.assert_close(nearest_grad, flow.grad)
    assert nearest_grad.abs().sum() > 0


def test_flow_grid_moves_each_cell_as_one():
    """flow_grid=8: the head's flow is one vector per 8 x 8 cell, interpolated between cell centres, so it has
    no detail finer than a cell (a flow per pixel does, from its random last conv)."""
    torch.manual_seed(0)
    flows = {}
    for grid in (1, 8):
        torch.manual_seed(0)
        head = FrameHead(16, (8, 12), "warp", "bilinear", grid)
        torch.nn.init.normal_(head.out.weight, std=0.5)
        flows[grid] = head(
            torch.randn(1, 1, 16, 8, 8), torch.randn(1, 16, 8, 8), torch.rand(1, 3, 64, 64)
        ).flow[0, 0]
    # piecewise linear between cell centres: its second difference vanishes away from them
    assert flows[8].diff(n=2, dim=-1)[..., 4:10].abs().max() < 1e-5
    assert flows[1].diff(dim=-1).abs().max() > 4 * flows[8].diff(dim=-1).abs().max()


def translation_gradient(scales, dx: float) -> torch.Tensor:
    """d loss / d (one backward flow shared by every pixel) at zero flow, for a disc of radius 3 whose target
    is dx px to its right (|dx| = 8, farther than its diameter: the two do not overlap)."""
    last, target = disc(32.5, 32.5, 3.0), disc(32.5 + dx, 32.5, 3.0)
    shift = torch.zeros(1, 2, 1, 1, requires_grad=True)
    pred = warp(last, shift.expand(1, 2, 64, 64))
    photometric_loss(pred, target, scales, worst=0.0)["photo"].backward()
    return shift.grad.flatten()


def test_multi_scale_loss_pulls_the_flow_toward_a_disc_beyond_its_radius():
    # the full-resolution loss is blind to where the disc should go: the same gradient for a target on the right
    # and on the left (what it has comes from the disc's own edges, alike in x and y)
    assert torch.equal(translation_gradient([1], 8.0), translation_gradient([1], -8.0))
    right, left = translation_gradient([1, 2, 4, 8, 16], 8.0), translation_gradient([1, 2, 4, 8, 16], -8.0)
    # with the pooled copies it depends on the target's side, in x only: a descent step makes the backward flow
    # more negative (moves the disc right) for the target on the right than for the one on the left
    assert right[0] - left[0] > 1e-3
    assert abs(float(right[1] - left[1])) < 1e-6


def test_photometric_loss_terms():
    pred, target = disc(20.5, 32.5, 3.0), disc(20.5, 32.5, 3.0)
    zero = photometric_loss(pred, target, [1, 4], worst=0.02)
    assert set(zero) == {"photo", "photo_l1_s1", "photo_l1_s4", "photo_mse", "photo_worst"}
    assert float(zero["photo"]) == 0.0
    moved = photometric_loss(disc(30.5, 32.5, 3.0), target, [1, 4], worst=0.02)
    # the worst 2% of the pixels (82) hold the two discs' 56 pixels: their mean error is far above the frame's
    assert moved["photo_worst"] > 10 * moved["photo_l1_s1"]


def test_flow_smoothness_is_zero_for_a_uniform_flow_and_cheaper_across_edges():
    image = disc(32.5, 32.5, 8.0)
    uniform = torch.full((1, 2, 64, 64), 3.0)
    assert float(flow_smoothness(uniform, image)) == 0.0
    inside = (disc(32.5, 32.5, 8.0, colour=(1.0, 1.0, 1.0), background=0.0)[:, :2] > 0.5).float()
    along_edge = inside * 4.0  # the flow jumps where the image does (the disc moves, the background stays)
    across = torch.zeros(1, 2, 64, 64)
    across[..., :, 20:] = 4.0  # the same jump through the middle of the disc and the background
    assert 0 < float(flow_smoothness(along_edge, image)) < float(flow_smoothness(across, image))


def test_foreground_area_ratio_counts_ghosts_and_fades():
    truth = disc(30.5, 30.5, 5.0, n=2)[:, None]  # (N, K=1, 3, H, W)
    ghost = truth.clone()
    ghost[:, 0] = torch.maximum(ghost[:, 0], disc(12.5, 50.5, 5.0)[0])  # drawn twice: old place and new
    faded = 0.05 + 0.1 * (truth - 0.05)  # a tenth of the contrast: under the foreground threshold
    area = foreground_area(truth)
    assert area.shape == (2, 1) and float(area[0, 0]) == float((disc(30.5, 30.5, 5.0)[0, 0] > 0.5).sum())
    assert torch.equal(foreground_area(ghost) / area, torch.full((2, 1), 2.0))
    assert float((foreground_area(faded) / area).max()) < 0.5

    # through the rollout scorer, as area_ratio at each horizon (truth: 1)
    frames = torch.cat([truth, truth], dim=1)  # (N, 2 frames: context, future)
    scorer = RolloutScorer("wave", {}, None, c=1, k=1)
    latents = torch.zeros(2, 1, 4, 8, 8)
    codes = torch.zeros(2, 1, 1, 8, 8, dtype=torch.long)
    common = {
        "pred_latents": latents,
        "true_latents": latents,
        "last_latent": latents[:, 0],
        "pred_indices": codes,
        "true_indices": codes,
        "last_indices": codes[:, 0],
    }
    scorer.update(None, frames, {**common, "pred_frames": ghost, "floor_frames": truth})
    results = scorer.compute()
    assert float(results["model"]["area_ratio"].reshape(-1)[0]) == 2.0
    assert float(results["tokenizer"]["area_ratio"].reshape(-1)[0]) == 1.0


def test_prediction_with_a_frame_head_starts_from_a_pixel_decoders_vqvae_and_loads_everywhere(
    recon_run, tmp_path
):
    """A reconstruction checkpoint (no frame head) starts a warp prediction run without an architecture
    conflict; the run's checkpoint holds the head, and load_world_model's rollout matches the phase's own."""
    from physworld import load_world_model
    from physworld.phases.checkpoints import load_phase

    init = recon_run / "checkpoints" / "last.ckpt"
    run_dir = tiny_run(
        tmp_path,
        "phase=prediction",
        f"phase.init_from={init}",
        "model.decoder.output=composite",
        "phase.photo_weight=1",
        "phase.flow_smoothness=0.01",
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("frame_head.out.") for k in state)
    assert float(state["frame_head.out.weight"].abs().sum()) > 0  # trained away from its zero start

    model = load_world_model(ckpt, device="cpu")
    assert model.frame_head is not None
    phase = load_phase(ckpt)[0].eval()
    frames = torch.rand(2, 2, 3, 64, 64)
    actions = torch.zeros(2, 6, 2)
    ours = model.rollout(frames, actions, horizon=5)
    theirs = phase.rollout(
        torch.cat([frames, frames[:, -1:].expand(2, 5, 3, 64, 64)], 1), actions, context_frames=2, horizon=5
    )
    torch.testing.assert_close(ours.frames, theirs["pred_frames"].clamp(0, 1))


def test_head_latents_encoded_trains_the_head_on_the_true_future_and_leaves_the_dynamics_alone(
    recon_run, make_cfg
):
    """phase.head_latents: with `predicted` the photometric loss reaches the dynamics through the head; with
    `encoded` training draws the encoded future frames' latents and the dynamics gets nothing from it, while
    evaluation (no gradient) draws and scores the predicted latents in both; phase.dynamics_photo then trains the
    dynamics on the predictions drawn by the head held fixed (the head's gradient does not change)."""
    from physworld.phases.prediction import PredictionPhase
    from physworld.run import plain

    init = recon_run / "checkpoints" / "last.ckpt"
    torch.manual_seed(0)
    batch = {"frames": torch.rand(2, 7, 3, 64, 64), "actions": torch.randn(2, 7, 2)}
    outs = {}
    for mode, dynamics_photo in (("predicted", 0), ("encoded", 0), ("encoded+", 1)):
        cfg = make_cfg(
            "debug=tiny",
            "phase=prediction",
            f"phase.init_from={init}",
            "model.decoder.output=warp",
            "phase.photo_weight=1",
            "phase.pred_weight=0",
            "phase.dynamics_l2=0",
            f"phase.head_latents={mode.rstrip('+')}",
            f"phase.dynamics_photo={dynamics_photo}",
        )
        torch.manual_seed(1)  # the same dynamics and head in both
        phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
        phase.setup("fit")
        torch.nn.init.normal_(phase.frame_head.out.weight, std=0.1)  # a flow that depends on the latents
        train = phase.compute_losses(batch)
        train["loss"].backward()
        dynamics = sum(float(p.grad.abs().sum()) for p in phase.dynamics.parameters() if p.grad is not None)
        head = float(phase.frame_head.out.weight.grad.abs().sum())
        with torch.no_grad():
            evaluation = phase.compute_losses(batch)
        outs[mode] = (train, dynamics, head, evaluation)
    assert outs["predicted"][1] > 0 and outs["predicted"][2] > 0
    assert outs["encoded"][1] == 0 and outs["encoded"][2] > 0
    assert "pred_frames" in outs["predicted"][0] and "pred_frames" not in outs["encoded"][0]
    assert outs["encoded"][0]["pred_photo"] != outs["predicted"][0]["pred_photo"]  # drawn from other latents
    for key in ("pred_frames", "pred_photo", "pred_frame_mse"):
        assert torch.equal(outs["encoded"][3][key], outs["predicted"][3][key]), key
    assert outs["encoded+"][1] > 0 and outs["encoded+"][2] == outs["encoded"][2]
    assert "pred_photo_dynamics" in outs["encoded+"][0] and "pred_photo_dynamics" not in outs["encoded"][0]


def test_frame_loop_experiment_prints_the_rollout_table(tmp_path):
    result = run(
        ["scripts/pipeline.py", "experiment=frame_loop", "debug=tiny", f"paths.data_dir={tmp_path / 'data'}"],
        tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "2_prediction, test rollouts, mean over the datasets:" in out
    for name in ("bouncing_balls", "pendulum"):
        assert f"2_prediction, test rollouts, {name}:" in out
    header = next(line for line in out.splitlines() if line.startswith("| horizon"))
    for column in ("pos. err. model (px)", "copy-last", "const. vel.", "sharpness model", "area ratio model"):
        assert column in header
    rows = [line for line in out.splitlines() if line.startswith("| t0")]
    assert [r.split(" | ")[0] for r in rows[:3]] == [
        "| t01",
        "| t02",
        "| t05",
    ]  # debug=tiny rolls out 6 steps
    metrics = json.loads((tmp_path / "outputs/pipelines/frame_loop/2_prediction/metrics.json").read_text())
    first = rows[0].strip("|").split(" | ")
    columns = [c.strip() for c in header.strip("|").split(" | ")]
    value = float(first[columns.index("area ratio model")])
    assert value == pytest.approx(metrics["test/rollout_area_ratio/t01"], abs=0.006)
