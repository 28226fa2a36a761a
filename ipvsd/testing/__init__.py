"""Test infrastructure that ships with the package: namespaces, the API server emulator."""
