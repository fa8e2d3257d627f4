"""localdev: one shared local cluster, many cheap isolated namespaces."""
