"""Training under the PPT setting: data, losses, the loop, checkpoints."""
