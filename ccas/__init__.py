"""CCAS operator tooling: the `ccas` command, the local stack and shared settings."""
