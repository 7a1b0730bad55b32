"""fairseq2 model families of AaPE: configs, arch registry, factories and models."""
