"""kdns built-in plugins: one package per Corefile directive (installed as kdns.plugins)."""
