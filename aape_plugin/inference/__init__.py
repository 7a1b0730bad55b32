"""Using trained encoders: loading them from runs, checkpoints or cards, and embedding audio
(:func:`embed_file` embeds one audio file of any format, channels and rate)."""

from aape_plugin.inference.files import FileEmbeddings, embed_file

__all__ = ["FileEmbeddings", "embed_file"]
