"""Apache Kafka 4.1 in KRaft mode: one combined broker + controller, jars from Maven, data in the stack folder."""

from __future__ import annotations

import subprocess

from ccas import settings
from ccas.stack import process, tls, tools
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


BROKER_PRINCIPAL = "CN=ccas-kafka"  # the subject of the broker's certificate: its principal on the TLS listeners
ADMIN_USER = "admin"


class Kafka(Service):
    name = "kafka"
    start_timeout_s = 90.0

    def ports(self) -> dict[str, int]:
        return {"broker": self.ports_all.kafka, "internal": self.ports_all.kafka_internal,
                "controller": self.ports_all.kafka_controller}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports_all.kafka}"

    def _server_properties(self) -> str:
        port, internal, controller = self.ports_all.kafka, self.ports_all.kafka_internal, self.ports_all.kafka_controller
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
            # Clients: TLS + SCRAM, one principal per component. The broker's own traffic (to itself as controller and
            # for transaction markers) and the stack's administration: TLS with the broker's certificate (mutual TLS).
            f"listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            "listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.dir / 'keystore.pem'}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca_file()}",
            "ssl.endpoint.identification.algorithm=https",
            "listener.name.internal.ssl.client.auth=required",
            "listener.name.controller.ssl.client.auth=required",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{BROKER_PRINCIPAL};User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found=false",
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
        cert, key = tls.server_certificate("kafka")
        keystore = self.dir / "keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_bytes(key.read_bytes() + cert.read_bytes())
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

    def admin_config(self) -> dict[str, object]:
        """kafka-python settings of the stack's own administration: the internal listener, the broker's certificate."""
        cert, key = tls.server_certificate("kafka")
        return {"bootstrap_servers": f"127.0.0.1:{self.ports_all.kafka_internal}", "security_protocol": "SSL",
                "ssl_cafile": str(tls.ca_file()), "ssl_certfile": str(cert), "ssl_keyfile": str(key)}

    def after_start(self) -> None:
        """Each component's SCRAM user (password from the secrets file) and its least-privilege ACLs."""
        from kafka import KafkaAdminClient

        from ccas import kafka_acls

        secret = settings.load_secrets()
        passwords = {component: secret[settings.kafka_password_variable(component)]
                     for component in settings.KAFKA_COMPONENTS}
        admin = KafkaAdminClient(client_id="ccas-stack-acls", request_timeout_ms=15000, **self.admin_config())
        try:
            kafka_acls.apply(admin, passwords)
        finally:
            admin.close()

    def probe(self) -> str:
        from kafka import KafkaAdminClient

        if not process.port_in_use(self.ports_all.kafka):
            raise StackError(f"port {self.ports_all.kafka} is not accepting connections")
        admin = KafkaAdminClient(request_timeout_ms=3000, client_id="ccas-stack-probe", **self.admin_config())
        try:
            topics = admin.list_topics()
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        return f"{len(brokers)} broker(s), {len([t for t in topics if not t.startswith('__')])} topic(s); TLS + SCRAM"
