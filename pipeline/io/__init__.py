"""I/O of the CCAS pipeline: Kafka sources and the sinks its stages write to (Kafka, PostgreSQL, S3).

Both Kafka readers yield the same elements, `records.KafkaRecord` stamped with the producer's CreateTime (event time = call
end): Beam's cross-language `ReadFromKafka` (Java KafkaIO, the default; its rows go through `records.from_beam_row`) and
`kafka_python.ReadFromKafkaPython`, our own unbounded splittable DoFn for machines without Java (`--kafka_io=python`).
"""
