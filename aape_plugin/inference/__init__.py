"""Using trained encoders: loading them from runs, checkpoints or cards, and embedding audio."""
