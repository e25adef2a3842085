#!/usr/bin/env bash
# Starts the single KRaft node of the Kafka image: fills in the launcher's own server.properties
# template from the environment, formats the storage on first start, then runs the broker in the
# foreground (tini forwards SIGTERM to it; Kafka stops cleanly within a few seconds).
#   KAFKA_HOST (127.0.0.1)  address of both listeners, and the one advertised to clients
#   KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DATA (/var/lib/kafka)
#   KAFKA_HEAP (-Xms256m -Xmx1g)
set -euo pipefail
dir="$KAFKA_DATA"
mkdir -p "$dir/logs"
sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$dir#g" \
  -e "s#@NODE_ID@#1#g" -e "s#@VOTERS@#1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT#g" -e "s#@RF@#1#g" -e "s#@MIN_ISR@#1#g" \
  -e "s#127\.0\.0\.1:#$KAFKA_HOST:#g" /opt/kafka/server.properties.template > "$dir/server.properties"
cp=/opt/kafka/libs/*
log=(-Dlog4j.configuration=file:/opt/kafka/kafka-log4j.properties)
if [ ! -f "$dir/logs/meta.properties" ]; then
  [ -f "$dir/cluster.id" ] || java "${log[@]}" -cp "$cp" kafka.tools.StorageTool random-uuid | tail -n1 > "$dir/cluster.id"
  java "${log[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$(cat "$dir/cluster.id")" -c "$dir/server.properties" >/dev/null
fi
echo "[kafka] starting on $KAFKA_HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), data in $dir"
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP:--Xms256m -Xmx1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
  -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true "${log[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
