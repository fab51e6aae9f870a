"""kdns-cni: a bridge CNI plugin and host-local-compatible IPAM (see README.md)."""
