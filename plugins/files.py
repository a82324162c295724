"""File resource types.

file, copy, template, write, line, rm, mkdir, stat, temp, temp_dir.
"""
