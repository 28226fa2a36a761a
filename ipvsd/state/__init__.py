"""Change tracking between informer events and syncs."""
