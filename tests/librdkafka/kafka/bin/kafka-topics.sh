#!/usr/bin/env bash
# Stands in for Kafka's bin/kafka-topics.sh, which some of librdkafka's tests
# run (through KAFKA_PATH, tests/librdkafka/run sets it): --create, --alter
# (--partitions, --config) and --delete of one topic, done with the
# AdminClient of confluent-kafka (cluster/install-kafka-clients' venv).
#
#   kafka-topics.sh --bootstrap-server B (--create|--alter|--delete) --topic T
#                   [--partitions N] [--replication-factor R] [--config k=v ...]
set -euo pipefail
py=${CAIRN_KAFKA_VENV:-/var/tmp/cairn-kafka-venv}/bin/python
exec "$py" - "$@" <<'PY'
import sys, argparse
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource, ConfigEntry, AlterConfigOpType

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap-server", required=True)
ap.add_argument("--create", action="store_true")
ap.add_argument("--alter", action="store_true")
ap.add_argument("--delete", action="store_true")
ap.add_argument("--topic", required=True)
ap.add_argument("--partitions", type=int)
ap.add_argument("--replication-factor", type=int, default=-1)
ap.add_argument("--config", action="append", default=[])
a = ap.parse_args()
admin = AdminClient({"bootstrap.servers": a.bootstrap_server})
topic = a.topic.strip('"')
configs = dict(kv.split("=", 1) for kv in a.config)
if a.create:
    f = admin.create_topics([NewTopic(topic, num_partitions=a.partitions or -1,
                                      replication_factor=a.replication_factor, config=configs)],
                            operation_timeout=30)
elif a.delete:
    f = admin.delete_topics([topic], operation_timeout=30)
elif a.alter and a.partitions:
    f = admin.create_partitions([NewPartitions(topic, a.partitions)], operation_timeout=30)
elif a.alter:
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
    f = admin.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic,
                                                        incremental_configs=entries)])
else:
    sys.exit("kafka-topics.sh: one of --create, --alter, --delete")
for fut in f.values():
    fut.result(timeout=60)
print(f"kafka-topics.sh: done ({topic})")
PY
