"""Service definitions (OSCAR's JSON and FDL files) and the registry of services."""
