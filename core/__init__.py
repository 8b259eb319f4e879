"""The runtime core: configuration and the clients every CCAS process shares (S3, Kafka, PostgreSQL, the recorder's HTTP API).

A layer with one rule: it imports nothing of the project except `schemas`, and never the local dev stack. Values come from the
process's own `CCAS_*` environment or flags; a value that is absent is absent (an empty S3 endpoint means AWS's default endpoint
and credential chain), never filled from a developer's machine.
"""
