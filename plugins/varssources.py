"""Vars sources: file, glob, http, env."""
