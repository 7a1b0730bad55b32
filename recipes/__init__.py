"""YAML presets of the recipes (``--preset NAME``), shipped as ``aape_plugin.presets``."""
