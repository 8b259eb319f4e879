"""Apache Kafka 4.1 in KRaft mode: one combined broker + controller, jars from Maven, data in the stack folder."""

from __future__ import annotations

import subprocess

from ccas.stack import process, tools
from ccas.stack.process import StackError
from ccas.stack.service import Service

_LOG4J2 = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_dir}/server.log
appender.file.filePattern = {log_dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.org.name = org.apache.kafka
logger.org.level = WARN
"""


class Kafka(Service):
    name = "kafka"
    start_timeout_s = 90.0

    def ports(self) -> dict[str, int]:
        return {"broker": self.ports_all.kafka, "controller": self.ports_all.kafka_controller}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports_all.kafka}"

    def _server_properties(self) -> str:
        port, controller = self.ports_all.kafka, self.ports_all.kafka_controller
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "num.partitions=1",
            f"log.dirs={self.dir / 'data'}",
            "",
        ])

    def prepare(self) -> None:
        self.libs = tools.maven_classpath("kafka-pom.xml")
        config = self.dir / "server.properties"
        config.write_text(self._server_properties())
        (self.dir / "log4j2.properties").write_text(_LOG4J2.format(log_dir=self.dir))
        if not (self.dir / "data" / "meta.properties").exists():
            self._format_storage(config)

    def _java(self, *args: str) -> list[str]:
        return [tools.java_binary(), "-cp", f"{self.libs}/*", *args]

    def _format_storage(self, config) -> None:
        cluster_id = subprocess.run(self._java("kafka.tools.StorageTool", "random-uuid"),
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        result = subprocess.run(
            self._java(f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}", "kafka.tools.StorageTool",
                       "format", "--standalone", "-t", cluster_id, "-c", str(config)),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        argv = [tools.java_binary(), "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.dir / "server.properties")]
        process.spawn(argv, self.log_file, self.pid_file)

    def probe(self) -> str:
        from kafka import KafkaAdminClient

        if not process.port_in_use(self.ports_all.kafka):
            raise StackError(f"port {self.ports_all.kafka} is not accepting connections")
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000, client_id="ccas-stack-probe")
        try:
            topics = admin.list_topics()
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        return f"{len(brokers)} broker(s), {len([t for t in topics if not t.startswith('__')])} topic(s)"
