"""Test runners: local, podman, docker."""
