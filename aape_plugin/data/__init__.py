"""Audio data: decoding, log-mel features, manifests and fairseq2 dataset families."""
