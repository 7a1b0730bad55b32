"""fairseq2 recipes of AaPE: pre-training, linear probe, fine-tuning, extraction."""
