"""AaPE (Aliasing-aware Patch Embedding) for fairseq2.

``aape_plugin.nn`` holds the plain-PyTorch building blocks (usable without fairseq2);
the rest adapts them to fairseq2's model, dataset and recipe machinery. The fairseq2
extension entry point is :func:`aape_plugin.extension.setup_aape_extension`.
"""

__version__ = "0.1.0"
