"""TinyDCT: an example third-party codec for pytest-nicrobust (see README.md)."""
