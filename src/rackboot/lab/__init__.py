"""The rackboot lab machinery: cached Debian images (podman, QEMU) and VM labs.

Run ``python -m rackboot.lab --help`` from the repository root; see
docs/testing.md.
"""
