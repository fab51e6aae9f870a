"""kdns-ipam: host-local-compatible address management (see ../README.md)."""
