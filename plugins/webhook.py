"""The HTTP webhook report hook."""
