"""Phase 3 of the seed, "Comprehensive Physics Training": fine-tune the whole world model on all ten datasets.

    L_total = L_recon + lambda * L_pred          (lr 5e-5, batch 16, 2 epochs: the seed's settings)

It is the prediction phase with the VQ-VAE unfrozen and the reconstruction loss of every frame of the window
switched on (`configs/phase/comprehensive.yaml`), run on `dataset=all`. Validation and test report every
metric per member dataset (`val/recon_psnr/pendulum`, ...) beside the mean over datasets.
"""

from __future__ import annotations

from physworld.phases.prediction import PredictionPhase


class ComprehensivePhase(PredictionPhase):
    """PredictionPhase with L_recon + lambda * L_pred; see configs/phase/comprehensive.yaml."""

    is_world_model = True
    trains_dynamics = True
    needs_trained_dynamics = False
    trains_agent = False
