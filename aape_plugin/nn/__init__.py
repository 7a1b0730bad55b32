"""Plain PyTorch building blocks of AaPE. Nothing here imports fairseq2."""
