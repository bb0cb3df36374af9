"""The model registry (GTO tags) and the promotion gate's report."""
