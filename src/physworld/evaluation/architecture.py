"""`architecture_diagram.png`, drawn from the instantiated model, not by hand: one block per layer with the
output shape it really produced on a dummy frame (forward hooks) and its real parameter count.

Top lane: frame -> encoder convs -> VQ codebook -> decoder transposed convs -> frame. Bottom lane (phases
with dynamics): latent z_t and action a_t -> ConvGRU cells -> 1x1 head -> predicted z_{t+1}, which the
decoder turns into the predicted frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from physworld.plots import pyplot

COLOURS = {
    "input": "#eeeeee",
    "encoder": "#c6dbef",
    "codebook": "#fdd0a2",
    "decoder": "#c7e9c0",
    "dynamics": "#dadaeb",
}


@dataclass
class Block:
    name: str
    detail: str  # the layer, e.g. "Conv2d 4x4/2, 3->64, ReLU"
    shape: tuple[int, ...]  # output shape of one sample (batch dimension dropped)
    params: int
    component: str  # a key of COLOURS


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(module: nn.Module) -> str:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        k, s = module.kernel_size[0], module.stride[0]
        return f"{type(module).__name__} {k}x{k}/{s}, {module.in_channels}->{module.out_channels}"
    if hasattr(module, "num_codes"):
        if module.groups > 1:
            return f"{module.groups} groups x {module.num_codes} codes x {module.group_dim}"
        return f"{module.num_codes} codes x {module.code_dim}"
    if hasattr(module, "hidden_channels"):
        return f"ConvGRU, {module.hidden_channels} channels"
    return type(module).__name__


@torch.no_grad()
def trace(phase) -> tuple[list[Block], list[Block]]:
    """Run one dummy frame (and one dynamics step) through the model; return the blocks of both lanes."""
    vqvae, dynamics = phase.vqvae, getattr(phase, "dynamics", None)
    named: list[tuple[str, nn.Module, str]] = []
    named += [(f"encoder conv {i + 1}", m, "encoder") for i, m in enumerate(vqvae.encoder.convs)]
    named.append(("vector quantiser", vqvae.quantizer, "codebook"))
    named += [(f"decoder deconv {i + 1}", m, "decoder") for i, m in enumerate(vqvae.decoder.deconvs)]
    if dynamics is not None:
        named += [(f"ConvGRU cell {i + 1}", m, "dynamics") for i, m in enumerate(dynamics.cells)]
        named.append(("head (1x1 conv)", dynamics.head, "dynamics"))
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str):
        def hook(_module, _inputs, out) -> None:  # returns None: the output is left as it is
            first = out[0] if isinstance(out, tuple) else out  # the quantiser returns (z_q, indices, loss)
            shapes.setdefault(name, tuple(first.shape[1:]))

        return hook

    hooks = [module.register_forward_hook(recorder(name)) for name, module, _ in named]
    was_training = phase.training
    phase.eval()
    try:
        device = next(phase.parameters()).device
        frame = torch.zeros(1, 3, 64, 64, device=device)
        vqvae(frame)
        if dynamics is not None:
            z = vqvae.encode(frame)[0]
            dynamics.step(z, torch.zeros(1, dynamics.action_dim, device=device), codebook=phase.codebook)
    finally:
        for hook in hooks:
            hook.remove()
        phase.train(was_training)
    blocks = {name: Block(name, describe(m), shapes[name], count(m), comp) for name, m, comp in named}
    top = [Block("input frame", "RGB in [0, 1]", (3, 64, 64), 0, "input")]
    top += [b for b in blocks.values() if b.component in ("encoder", "codebook", "decoder")]
    top.append(Block("output frame", "linear, clamped to show", top[-1].shape, 0, "input"))
    bottom = []
    if dynamics is not None:
        latent = blocks["vector quantiser"].shape
        detail = f"latent {'x'.join(map(str, latent))} + action ({dynamics.action_dim})"
        bottom.append(Block("z_t, a_t", detail, (latent[0] + dynamics.action_dim, *latent[1:]), 0, "input"))
        bottom += [b for b in blocks.values() if b.component == "dynamics"]
        bottom[-1].name = "head -> codes of z_t+1" if dynamics.predicts_tokens else "head -> z_t+1"
    return top, bottom


def architecture_diagram(phase, path: Path, title: str = "") -> dict[str, int]:
    """Draw the traced blocks; return the parameter counts per component (the phase's own, plus total)."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    top, bottom = trace(phase)
    counts = phase.parameter_counts()
    plt = pyplot()
    step, box_w, box_h = 2.05, 1.7, 1.2  # block pitch and size, in axis units
    columns = max(len(top), len(bottom))
    fig, ax = plt.subplots(figsize=(step * columns + 0.5, 5.6 if bottom else 3.2))
    top_y = 1.9 if bottom else 0.0
    for blocks, y in [(top, top_y), (bottom, 0.0)]:
        for i, block in enumerate(blocks):
            x = step * i
            box = FancyBboxPatch((x, y), box_w, box_h, boxstyle="round,pad=0.03", ec="#444444")
            box.set_facecolor(COLOURS[block.component])
            ax.add_patch(box)
            lines = [
                (block.name, 0.93, {"fontsize": 8, "weight": "bold"}),
                (block.detail, 0.62, {"fontsize": 6.5}),
                ("out " + "x".join(map(str, block.shape)), 0.38, {"fontsize": 7}),
                (f"{block.params:,} params" if block.params else "", 0.15, {"fontsize": 6.5}),
            ]
            for text, dy, style in lines:
                ax.text(x + box_w / 2, y + dy, text, ha="center", va="center", **style)
            if i:
                arrow = ((x - step + box_w + 0.03, y + box_h / 2), (x - 0.03, y + box_h / 2))
                ax.add_patch(FancyArrowPatch(*arrow, arrowstyle="-|>", mutation_scale=10))
    if bottom:
        # The predicted latent is decoded like an encoded one: an arrow from the head up to the decoder.
        decoder = next(i for i, b in enumerate(top) if b.component == "decoder")
        head = (step * (len(bottom) - 1) + box_w, box_h / 2)
        ax.add_patch(
            FancyArrowPatch(
                head,
                (step * decoder + box_w / 2, top_y - 0.03),
                arrowstyle="-|>",
                mutation_scale=10,
                connectionstyle="arc3,rad=0.3",
                ls="--",
            )
        )
        ax.text(head[0] + 0.1, box_h + 0.2, "decode predicted z_t+1", fontsize=7, style="italic")
    ax.set_xlim(-0.2, step * columns)
    ax.set_ylim(-0.3, top_y + box_h + 0.2)
    ax.axis("off")
    summary = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    ax.set_title(f"{title}\nparameters: {summary}".strip(), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return counts
