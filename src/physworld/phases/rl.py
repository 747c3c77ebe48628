"""Phase 4 of the seed, "RL in Imagination": a Dreamer-style actor-critic trained inside the world model.

The world model (VQ-VAE + ConvGRU, from `phase.init_from`, a prediction checkpoint trained on
dataset=goal_reach) is frozen. Each training step, on a batch of real windows (frames, actions, rewards):

1. the reward predictor r(z_t) is fitted to the real rewards (it alone trains for the first
   `reward_pretrain_steps` steps: the seed's Failure 4 fix, so the actor never exploits an untrained,
   constant reward model), on the encoded latents and, with `reward_on_predicted`, also on the dynamics'
   open-loop predictions of the same frames (what it scores in imagination);
2. the real window is run through the dynamics (teacher forced) to get model states s = (z_t, h_t), h_t the
   ConvGRU's top hidden state; from every one of them the actor imagines `imagination_horizon` steps:
   a_k = tanh-Gaussian sample + N(0, action_noise) (clipped to [-1, 1]), z_{k+1}, h_{k+1} = dynamics(z_k, a_k);
3. lambda-returns G_k (gamma, lambda) from predicted rewards r(z_{k+1}) and the target critic's values;
4. actor: maximise G / S + entropy_weight * H(pi), backpropagating through the frozen dynamics and reward
   model (Dreamer's dynamics backpropagation); S = max(1, EMA of the 5-95 percentile range of G) is the
   return normalisation that keeps the actor's gradient scale fixed;
5. critic: regress G (stopped gradient) from s; the target critic copies it every `target_update_every`
   steps. Rewards lie in [-1.4, 0] and gamma < 1, so returns and the critic loss stay bounded: the seed's
   critic loss growing to 4e6 (its table) is the symptom of the missing target network and normalisation.

Evaluation happens in the real environment (physworld/GoalReach-v0), never in the model: every
`eval_every_n_steps` training steps, at each validation epoch and at test time, the policies of
`phase.eval_policies` act on encoded observations, next to a random and an oracle policy on the same seeds:
`actor`, the deterministic policy tanh(mean) (keys return_policy, gap_closed, policy_regret), and `planner`,
model-predictive control with the cross-entropy method over imagined action sequences scored by the reward model
and the critic (models/planner.py; keys return_planner, gap_closed_planner, planner_regret). Each also reports
its milliseconds per action (policy_ms_per_action, planner_ms_per_action). The policies, the environment
and the scores beside the baselines are in physworld/envs/agent.py.
"""

from __future__ import annotations

import copy
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from physworld.envs.agent import POLICIES, baselines, environment, scores
from physworld.envs.episodes import Episodes, run_episodes
from physworld.models.agent import Actor, Critic, RewardPredictor, lambda_returns, split_lambda_returns
from physworld.models.build import build_dynamics, build_frame_head
from physworld.models.planner import Plan, PlannerSettings, cem_plan
from physworld.phases.base import WorldModelPhase


class RLPhase(WorldModelPhase):
    def __init__(self, model: dict, phase: dict, dataset_names: list[str] | None = None):
        super().__init__(model, phase, dataset_names)
        self.automatic_optimization = False
        self.dynamics = build_dynamics(self.spec)
        self.vqvae.requires_grad_(False)
        self.dynamics.requires_grad_(False)  # frozen: gradients flow through it to the actor, never into it
        frame_head = build_frame_head(self.spec)
        if frame_head is not None:  # kept (frozen) so that this checkpoint holds the whole world model
            self.frame_head = frame_head.requires_grad_(False)
        code, hidden = self.spec.vq.code_dim, self.spec.dynamics.hidden_channels
        head = asdict(self.settings.head)
        self.reward_model = RewardPredictor(code, **head)
        self.actor = Actor(code + hidden, action_dim=self.spec.dynamics.action_dim, **head)
        self.critic = Critic(code + hidden, **head)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # dataset=gym: an environment with fewer actions than the model's columns plays only the first ones, and
        # its dataset holds zeros in the others; the agent's actions are masked to match, in imagination and out.
        mask = torch.ones(self.spec.dynamics.action_dim)
        if self.settings.env_id:
            from physworld.envs.gym_pixels import PixelEnv

            env = PixelEnv(self.settings.env_id)
            mask[env.action_dim :] = 0.0
            env.close()
        self.register_buffer("action_mask", mask, persistent=False)
        self.register_buffer("return_scale", torch.ones(()))
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))
        self.eval_reward_loss = torch.nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})
        self.last_episodes: dict[str, Episodes] = {}  # the latest real-environment evaluation (for figures)
        self._baselines: dict[tuple, dict[str, float]] = {}
        # One model state, z (1, C, h, w) and h (1, Hc, h, w) on the latent grid (64 px halved by every encoder
        # conv): the model summary runs forward, the actor's step, on it to count its FLOPs.
        grid = 64 // 2 ** (len(self.spec.encoder.hidden_channels) + 1)
        self.example_input_array = {
            "z": torch.zeros(1, code, grid, grid),
            "hidden": torch.zeros(1, hidden, grid, grid),
        }

    @classmethod
    def freezes_vqvae(cls, phase: dict) -> bool:
        return True

    @property
    def first_steady_step(self) -> int:
        """The first batch of this fit past the reward pre-training (whose steps imagine nothing), and not one
        that also evaluates in the real environment. train_steps counts the steps of earlier fits (a resume)."""
        settings, done = self.settings, int(self.train_steps)
        index = max(1, settings.reward_pretrain_steps - done)  # its step is number done + index + 1
        every = settings.eval_every_n_steps
        if (every or 0) > 1 and (done + index + 1) % every == 0:
            index += 1
        return index

    def forward(self, z: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The deterministic action for model states z (B, C, 8, 8), h (B, Hc, 8, 8) -> (B, A)."""
        return self.actor.act(torch.cat([z, hidden], dim=1)) * self.action_mask

    def compute_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The reward predictor's loss on a batch: the first of a training step's three updates (in reward
        pre-training the only one). The actor's and the critic's losses are `imagine`'s, from `start_states` of
        the latents returned here, computed after the reward predictor's update (the imagined rewards are the
        updated predictor's): so no single loss of the step can be computed up front.

        `batch`: "frames" (B, T, 3, H, W) float in [0, 1] (on_after_batch_transfer's output) or, from the token
        cache, "tokens" (B, T, G, h, w); "actions" (B, T, A); "rewards" (B, T). Returns "reward_loss" (what the
        reward predictor's optimizer minimises), with phase.reward_on_predicted also "reward_loss_predicted" (its
        part on the dynamics' predictions), both logged as train/<key>; and "latents" (B, T, C, h, w), the
        batch's quantized latents."""
        z = self._latents(batch)  # (B, T, C, h, w)
        rewards = batch["rewards"]
        out = {"latents": z}
        reward_loss = F.mse_loss(self.reward_model(z.flatten(0, 1)), rewards.flatten())
        if self.settings.reward_on_predicted:
            # The actor's rewards come from predicted latents, which are smoother than encoded ones: fit the
            # reward model on those too (open-loop predictions of the window from its first frame, real actions).
            with torch.no_grad():
                predicted = self.dynamics.rollout(  # frames 1..T-1
                    z[:, :1], batch["actions"], z.shape[1] - 1, codebook=self.codebook, feedback="argmax"
                ).latents
            predicted_loss = F.mse_loss(self.reward_model(predicted.flatten(0, 1)), rewards[:, 1:].flatten())
            out["reward_loss_predicted"] = predicted_loss
            reward_loss = 0.5 * (reward_loss + predicted_loss)
        out["reward_loss"] = reward_loss
        return out

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_reward, opt_actor, opt_critic = self.optimizers()
        settings = self.settings
        losses = self.compute_losses(batch)
        self._update(opt_reward, losses["reward_loss"], self.reward_model)
        self.log("train/reward_loss", losses["reward_loss"], prog_bar=True)
        if "reward_loss_predicted" in losses:
            self.log("train/reward_loss_predicted", losses["reward_loss_predicted"])
        self.train_steps += 1
        step = int(self.train_steps)  # batches seen (Lightning's global_step counts every optimizer.step())
        if step <= settings.reward_pretrain_steps:
            return
        every = settings.eval_every_n_steps
        evaluating = bool(every) and step % every == 0
        out = self.imagine(*self.start_states(losses["latents"], batch["actions"]), split_gradient=evaluating)
        self._update(opt_actor, out["actor_loss"], self.actor)
        self._update(opt_critic, out["critic_loss"], self.critic)
        if step % settings.target_update_every == 0:
            self.target_critic.load_state_dict(self.critic.state_dict())
        self.log_dict({f"train/{k}": v for k, v in out.items()})
        if evaluating:
            self.log_dict(self.evaluate(settings.eval_episodes, seed=settings.eval_seed, stage="train"))

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_reward("val", batch)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_reward("test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_end("val", self.settings.eval_episodes)

    def on_test_epoch_end(self) -> None:
        self._log_eval_end("test", self.settings.test_episodes)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqvae.eval()  # frozen world model: no code restarts, no data init
        self.dynamics.eval()
        return self

    def configure_optimizers(self):
        settings = self.settings
        return [
            torch.optim.AdamW(self.reward_model.parameters(), lr=settings.reward_lr, weight_decay=0.0),
            torch.optim.AdamW(self.actor.parameters(), lr=settings.actor_lr, weight_decay=0.0),
            torch.optim.AdamW(self.critic.parameters(), lr=settings.critic_lr, weight_decay=0.0),
        ]

    # ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _latents(self, batch: dict) -> torch.Tensor:
        """A batch's quantized latents (B, T, C, h, w): its token-cache codes looked up, or its frames
        (B, T, 3, H, W) encoded."""
        tokens = batch.get("tokens")
        if tokens is not None:
            return self.vqvae.quantizer.lookup(tokens.long().flatten(0, 1)).unflatten(0, tokens.shape[:2])
        frames = batch["frames"]
        return self.vqvae.encode(frames.flatten(0, 1))[0].unflatten(0, frames.shape[:2])

    @torch.no_grad()
    def start_states(self, z: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Imagination's start states from real windows, latents z (B, T, C, h, w) and actions (B, T, A):
        teacher-force the dynamics along each window; every frame t >= 1 becomes a start state (z_t, hidden
        after consuming z_{t-1}, a_{t-1}), a random phase.imagination_starts of them kept. Returns z (N, C, h, w),
        hidden per layer (N, Hc, h, w)."""
        state, starts_z, starts_h = None, [], []
        for t in range(z.shape[1] - 1):
            state = self.dynamics.advance(z[:, t], actions[:, t], state)
            starts_z.append(z[:, t + 1])
            starts_h.append(state)
        n = self.settings.imagination_starts
        z0 = torch.cat(starts_z)
        hidden = [torch.cat([s[i] for s in starts_h]) for i in range(len(state))]
        if n and z0.shape[0] > n:  # a random subset keeps the cost per step fixed
            pick = torch.randperm(z0.shape[0], device=z0.device)[:n]
            z0, hidden = z0[pick], [h[pick] for h in hidden]
        return z0, hidden

    def imagine(
        self, z: torch.Tensor, state: list[torch.Tensor], split_gradient: bool = False
    ) -> dict[str, torch.Tensor]:
        """Imagine phase.imagination_horizon steps of the actor's (noisy) actions from start states z (N, C, h, w)
        and hidden per layer (N, Hc, h, w) (`start_states`). Returns the actor's and the critic's losses,
        "actor_loss" and "critic_loss", and "entropy", "imagined_return", "lambda_return", "return_scale": all
        logged as train/<key>. Like a training step, it moves the running return scale (self.return_scale).
        With `split_gradient`, also "critic_grad_share" (see `_critic_grad_share`): one more backward pass."""
        settings = self.settings
        features, entropies, rewards, actions = [], [], [], []
        for _ in range(settings.imagination_horizon):
            f = torch.cat([z, state[-1]], dim=1)
            action, entropy = self.actor.sample(f)
            action = (action + settings.action_noise * torch.randn_like(action)).clamp(
                -1.0, 1.0
            ) * self.action_mask
            actions.append(action)
            # token dynamics: the predicted code straight-through, so the actor's gradient passes the choice
            z, state = self.dynamics.step(z, action, state, self.codebook, feedback="straight_through")
            features.append(f)
            entropies.append(entropy)
            rewards.append(self.reward_model(z))  # the reward of the state the action led to
        features.append(torch.cat([z, state[-1]], dim=1))
        feats = torch.stack(features)  # (H + 1, N, F, h, w)
        values = self.target_critic(feats.flatten(0, 1)).unflatten(0, feats.shape[:2])  # (H + 1, N)
        returns = lambda_returns(torch.stack(rewards), values, settings.gamma, settings.td_lambda)  # (H, N)
        with torch.no_grad():  # return normalisation (DreamerV3): a running 5-95 percentile range, at least 1
            spread = torch.quantile(returns.detach().flatten(), 0.95) - torch.quantile(
                returns.detach().flatten(), 0.05
            )
            self.return_scale.mul_(0.99).add_(0.01 * spread)
            scale = self.return_scale.clamp_min(1.0)
        entropy = torch.stack(entropies).mean()
        actor_loss = -(returns / scale).mean() - settings.entropy_weight * entropy
        value_pred = self.critic(feats[:-1].detach().flatten(0, 1)).unflatten(0, returns.shape)
        critic_loss = 0.5 * (value_pred - returns.detach()).pow(2).mean()
        logs = {}
        if split_gradient:
            logs["critic_grad_share"] = self._critic_grad_share(torch.stack(rewards), values, actions)
        return {
            **logs,
            "actor_loss": actor_loss,
            "critic_loss": critic_loss,
            "entropy": entropy,
            "imagined_return": torch.stack(rewards).sum(0).mean().detach(),
            "lambda_return": returns.mean().detach(),
            "return_scale": scale,
        }

    def _critic_grad_share(
        self, rewards: torch.Tensor, values: torch.Tensor, actions: list[torch.Tensor]
    ) -> torch.Tensor:
        """How much of the actor's gradient comes from the critic: |dV/da| / (|dR/da| + |dV/da|) over the
        imagined actions, where the lambda-return G = R + V splits linearly into the predicted rewards' part R
        (G with zero values) and the target critic's bootstrap part V.

        Near 0 the actor follows the reward model through the dynamics; near 1 it follows the critic's slope.
        A critic fitted to few imagined states can have a slope that points nowhere useful, and an actor that
        follows it settles into one fixed action (docs/results.md, "The agent's collapse"): watch this
        beside train/gap_closed."""
        settings = self.settings
        norms = []
        for part in split_lambda_returns(rewards, values, settings.gamma, settings.td_lambda):
            grads = torch.autograd.grad(part.mean(), actions, retain_graph=True, allow_unused=True)
            norms.append(
                torch.sqrt(sum((g.pow(2).sum() for g in grads if g is not None), rewards.new_zeros(())))
            )
        return (norms[1] / (norms[0] + norms[1]).clamp_min(1e-12)).detach()

    def _update(self, optimizer, loss: torch.Tensor, module: torch.nn.Module) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(
            optimizer, gradient_clip_val=self.settings.grad_clip, gradient_clip_algorithm="norm"
        )
        optimizer.step()

    def _eval_reward(self, stage: str, batch: dict) -> None:
        z = self._latents(batch)
        loss = F.mse_loss(self.reward_model(z.flatten(0, 1)), batch["rewards"].flatten())
        self.eval_reward_loss[stage].update(loss, weight=batch["frames"].shape[0])

    def _log_eval_end(self, stage: str, episodes: int) -> None:
        self.log(f"{stage}/reward_loss", self.eval_reward_loss[stage].compute())
        self.eval_reward_loss[stage].reset()
        if self.trainer.sanity_checking:
            return
        seed = self.settings.eval_seed if stage != "test" else self.settings.test_seed
        self.log_dict(self.evaluate(episodes, seed=seed, stage=stage), sync_dist=False)

    @torch.no_grad()
    def evaluate(self, episodes: int, seed: int, stage: str) -> dict[str, float]:
        """Real-environment returns of the policies of phase.eval_policies, a random and an oracle policy (where
        the environment has one) on seeds seed .. seed+E-1 (envs/agent.py). Without an oracle there is no gap
        and no regret."""
        seeds = list(range(seed, seed + episodes))
        was_training = self.training
        self.eval()
        env, oracle_policy = environment(self.settings)
        mine = {
            name: run_episodes(POLICIES[name](self), seeds, **env) for name in self.settings.eval_policies
        }
        if was_training:
            self.train()
        key = (seed, episodes)
        if key not in self._baselines:  # the baselines do not change during training: compute them once
            self._baselines[key], played = baselines(
                seeds, env, oracle_policy, self.action_mask.cpu().numpy()
            )
            self.last_episodes.update(played)
        self.last_episodes["policy"] = next(iter(mine.values()))  # the figures show the first policy listed
        return {f"{stage}/{k}": v for k, v in scores(self._baselines[key], mine).items()}

    @torch.no_grad()
    def plan(self, z: torch.Tensor, state: list[torch.Tensor], mean: torch.Tensor | None = None) -> Plan:
        """The planner's plan from model states z (B, C, h, w) and hidden per layer (B, Hc, h, w): CEM over
        phase.planner.horizon imagined steps of the frozen dynamics, scored by the reward model and, with
        phase.planner.terminal_value, the critic's value of the last imagined state; its action (B, A) and mean
        sequence (B, H, A). `mean`: the search's start (a warm start), None: 0."""
        cfg = self.settings.planner
        settings = PlannerSettings(
            horizon=cfg.horizon,
            candidates=cfg.candidates,
            elites=cfg.elites,
            iterations=cfg.iterations,
            gamma=self.settings.gamma,
        )

        def step(z, action, state):
            return self.dynamics.step(z, action * self.action_mask, state, self.codebook, feedback="argmax")

        def value(z, state):
            return self.critic(torch.cat([z, state[-1]], dim=1))

        terminal = value if cfg.terminal_value else None
        found = cem_plan(
            step, self.reward_model, z, state, self.spec.dynamics.action_dim, settings, terminal, mean
        )
        return Plan(action=found.action * self.action_mask, mean=found.mean * self.action_mask)
