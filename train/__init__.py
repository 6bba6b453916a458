"""actrec trainer: heatmap store -> model -> checkpoints, metrics, plots."""
