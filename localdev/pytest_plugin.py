"""pytest plugin (fixtures land with the pytest-plugin issue)."""
