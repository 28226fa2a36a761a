"""Pure decisions: topology, desired state, diffs. No asyncio, no clock, no I/O."""
