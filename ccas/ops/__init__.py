"""Operations tooling: dead-letter inspection and requeue (CLI and REST), consumer-lag exporter, Prometheus, `ccas status`."""
