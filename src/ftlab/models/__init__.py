"""Where the model is built: backbones, heads, losses, metrics, schedules, and the LightningModule."""
