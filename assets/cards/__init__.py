"""fairseq2 asset cards shipped with aape_plugin (registered by the extension)."""
