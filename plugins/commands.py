"""Command resource types: exec and shell."""
