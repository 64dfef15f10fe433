"""Training maps: metric trajectories over checkpoints and latent phases (issue 15)."""
