"""The repository's own pytest configuration: pytester drives the plugin in tests/."""

pytest_plugins = ["pytester"]
