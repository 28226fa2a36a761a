"""Running plan + apply: the bounded-frequency loop and the syncer."""
