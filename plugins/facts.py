"""Facts about the host.

OS, distribution, architecture, hostname, CPUs, memory, Python, addresses.
"""
