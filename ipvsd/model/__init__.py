"""Plain frozen values shared by every layer; no I/O, no behaviour beyond validation."""
