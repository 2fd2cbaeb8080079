"""Sales agents as they behave in the field, on the official adcp server framework (for interop tests)."""
