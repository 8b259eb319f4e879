"""The CCAS Apache Beam streaming pipeline: calls.raw → dedup → enrich → S3 → score → PostgreSQL / Kafka / dead letters."""
