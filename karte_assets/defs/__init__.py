"""One folder per client instance of a use case: ``<instance>/defs.yaml`` (``dg scaffold defs``)."""
