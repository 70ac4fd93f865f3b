"""StreamForge workers: one package, one entrypoint module per component (`Component.module`)."""
