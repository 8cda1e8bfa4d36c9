"""rackboot test hosts: cached Debian images (podman, QEMU) and VM labs.

Run ``python -m tests.hosts --help`` from the repository root; see
docs/testing.md.
"""
