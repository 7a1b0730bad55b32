"""Data shipped with aape_plugin: asset cards and the demo audio (``aape_plugin.assets``)."""
