"""Built-in CLI commands, one module per feature, imported on first use."""
