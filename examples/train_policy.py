"""Train a policy inside a loaded world model of goal_reach, then run it in the real environment.

    python examples/train_policy.py <goal_reach prediction run>/checkpoints/best.ckpt

1. A reward predictor r(z) is fitted to the dataset's rewards on the encoded frames.
2. An actor is trained in imagination: from dataset frames it acts for `--horizon` steps inside the world
   model, and the sum of the predicted rewards is maximised by backpropagating through the frozen dynamics
   (Dreamer's dynamics backpropagation, without its critic: the horizon is short).
3. Its return in physworld/GoalReach-v0 is compared with a random policy's on the same seeds.
phase=rl does all this properly (critic, lambda-returns, return normalisation); this is the short version.
"""

from __future__ import annotations

import argparse

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F

import physworld
from physworld.models.agent import Actor, RewardPredictor

ENV_ID = "physworld.envs:physworld/GoalReach-v0"  # Gymnasium imports physworld.envs, which registers it


def real_return(wm, act, seeds: list[int], steps: int) -> float:
    """Mean return of `act(latents, hidden) -> actions` over one episode per seed, the model's hidden state
    following the real observations and actions (as in imagination)."""
    envs = gymnasium.make_vec(ENV_ID, num_envs=len(seeds), vectorization_mode="sync", max_episode_steps=steps)
    obs, _ = envs.reset(seed=seeds)
    total, state, previous = np.zeros(len(seeds)), None, None
    with torch.no_grad():
        for _ in range(steps):
            z = wm.encode(obs).latents  # (E, C, h, w)
            state = (
                wm.dynamics.initial_state(z) if previous is None else wm.dynamics.advance(*previous, state)
            )
            action = torch.as_tensor(
                act(z, state[-1]), device=wm.device
            ).float()  # (E, A) on the model's device
            previous = (z, action)
            obs, reward, _, _, _ = envs.step(action.cpu().numpy())
            total += reward
    envs.close()
    return float(total.mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a goal_reach world model: checkpoint (.ckpt) or exported folder")
    parser.add_argument("--data-dir", default=None, help="where the data is kept (default: data/)")
    parser.add_argument("--num-sequences", type=int, default=None, help="cap every split (debug=tiny: 8)")
    parser.add_argument(
        "--num-frames", type=int, default=None, help="cap the sequence length (debug=tiny: 8)"
    )
    parser.add_argument("--sequences", type=int, default=256, help="training sequences used (the first ones)")
    parser.add_argument("--reward-steps", type=int, default=500, help="reward-predictor training steps")
    parser.add_argument("--actor-steps", type=int, default=300, help="actor training steps")
    parser.add_argument("--horizon", type=int, default=10, help="imagined steps per actor update")
    parser.add_argument("--batch", type=int, default=64, help="start frames per actor update")
    parser.add_argument("--episodes", type=int, default=8, help="real episodes to evaluate on")
    parser.add_argument("--episode-steps", type=int, default=100, help="steps per real episode")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    wm = physworld.load_world_model(args.model, device=args.device)
    data = physworld.datasets.load(
        "goal_reach", "train", args.data_dir, num_sequences=args.num_sequences, num_frames=args.num_frames
    )
    frames = data.frames[: args.sequences]  # uint8 (N, T, 64, 64, 3), still memory-mapped
    z = wm.encode(frames).latents.flatten(0, 1)  # (N*T, C, h, w)
    rewards = torch.as_tensor(np.array(data.rewards[: args.sequences]), device=wm.device).flatten()  # (N*T,)

    reward_model = RewardPredictor(wm.latent_channels).to(wm.device)
    optimizer = torch.optim.Adam(reward_model.parameters(), lr=1e-3)
    for _ in range(args.reward_steps):
        pick = torch.randint(len(z), (min(256, len(z)),), device=wm.device)
        loss = F.mse_loss(reward_model(z[pick]), rewards[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"reward model: MSE {loss.item():.5f} (reward variance {rewards.var().item():.5f})")
    reward_model.requires_grad_(False)

    actor = Actor(wm.latent_channels + wm.hidden_channels, action_dim=wm.action_dim).to(wm.device)
    optimizer = torch.optim.Adam(actor.parameters(), lr=3e-4)
    starts = frames.reshape(-1, 1, *frames.shape[2:])  # every frame a one-frame start (N*T, 1, 64, 64, 3)
    for step in range(args.actor_steps):
        pick = np.random.default_rng(step).choice(len(starts), min(args.batch, len(starts)), replace=False)
        dream = wm.imagine(
            lambda zt, h: actor.sample(torch.cat([zt, h], 1))[0],
            starts[np.sort(pick)],
            args.horizon,
            decode=False,
        )
        imagined = reward_model(dream.latents.flatten(0, 1))  # (B*horizon,)
        loss = -imagined.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"actor: imagined reward per step {-loss.item():.4f}")

    seeds = list(range(1000, 1000 + args.episodes))
    policy = real_return(wm, lambda zt, h: actor.act(torch.cat([zt, h], 1)), seeds, args.episode_steps)
    rng = torch.Generator().manual_seed(args.seed)
    random = real_return(
        wm,
        lambda zt, h: torch.rand(zt.shape[0], wm.action_dim, generator=rng) * 2 - 1,
        seeds,
        args.episode_steps,
    )
    print(f"real return over {args.episodes} episodes: policy {policy:.2f}, random {random:.2f}")


if __name__ == "__main__":
    main()
