# Apache Kafka (KRaft, one node that is broker and controller) from Debian's Java 17 and the
# Kafka jars the local launcher resolves from Maven Central (infra/kafka/pom.xml): build.sh puts
# them in the build context. Configured by environment (see kafka-entrypoint.sh).
ARG BASE=emotionmuse/debian:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --user-group --home-dir /var/lib/kafka --create-home --shell /usr/sbin/nologin kafka
COPY libs /opt/kafka/libs
COPY server.properties.template kafka-log4j.properties kafka-entrypoint.sh /opt/kafka/
USER 10002:10002
VOLUME /var/lib/kafka
ENV KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093 KAFKA_HOST=127.0.0.1 KAFKA_DATA=/var/lib/kafka
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=6 CMD ["bash", "-c", "exec 3<>/dev/tcp/${KAFKA_HOST}/${KAFKA_PORT}"]
ENTRYPOINT ["/usr/bin/tini", "--", "bash", "/opt/kafka/kafka-entrypoint.sh"]
