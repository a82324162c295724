"""Control and data resource types.

set, debug, fail, exit, assert, loop, switch, try, recipe, load, which, facts, python.
"""
