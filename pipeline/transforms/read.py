"""ReadCallEvents: calls.raw as KafkaRecords with partition, offset and the producer's timestamp (= call end) as event time.

`java` (default): Beam's ReadFromKafka — Java KafkaIO through the expansion service. `python`: our splittable DoFn
(pipeline/io/kafka_python.py) for machines without Java. Both start from the consumer group's committed offsets (else the
earliest), never commit themselves (CommitOffsets does, after the sinks), and read only committed transactions.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.io.kafka import ReadFromKafka

from pipeline.io.kafka_python import ReadFromKafkaPython
from pipeline.io.records import KafkaRecord, from_beam_row
from pipeline.options import JobConfig


def consumer_config(config: JobConfig) -> dict[str, str]:
    return {
        "bootstrap.servers": config.kafka_bootstrap,
        "group.id": config.consumer_group,
        "enable.auto.commit": "false",  # without it the consumer commits for the group and a restart skips in-flight calls
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",  # the poller publishes in transactions; aborted ones must never be read
        **config.kafka_security.java_config(),  # TLS and the pipeline's SASL user, as for the Python clients
    }


class ReadCallEvents(beam.PTransform):
    """PBegin → PCollection[KafkaRecord] of the input topic.

    Args:
        config: bootstrap servers, topic, consumer group, reader (`kafka_io`) and expansion service.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, pbegin: Any) -> Any:
        c = self.config
        if c.kafka_io == "python":
            return pbegin | "ReadKafkaPython" >> ReadFromKafkaPython(c.kafka_bootstrap, [c.input_topic], c.consumer_group,
                                                                        c.kafka_security.python_config())
        return (
            pbegin
            | "ReadKafkaJava" >> ReadFromKafka(
                consumer_config=consumer_config(c), topics=[c.input_topic], with_metadata=True,
                timestamp_policy=ReadFromKafka.create_time_policy, expansion_service=c.expansion_service)
            | "ToKafkaRecord" >> beam.Map(from_beam_row).with_output_types(KafkaRecord)
        )
