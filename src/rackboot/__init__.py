"""rackboot: the command-line front door on the rackboot.metal collection."""
__version__ = "0.1.0"
