"""Checks the local stack's security controls hold while it runs: no secret in a process's arguments, none in logs."""
