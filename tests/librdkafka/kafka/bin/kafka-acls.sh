#!/usr/bin/env bash
# Stands in for Kafka's bin/kafka-acls.sh, which some of librdkafka's tests
# run (through KAFKA_PATH): --add or --remove of one binding on a topic or
# group, done with the AdminClient of confluent-kafka
# (cluster/install-kafka-clients' venv).
#
#   kafka-acls.sh --bootstrap-server B (--add|--remove [--force])
#                 (--allow-principal P --allow-host H | --deny-principal P --deny-host H)
#                 --operation O (--topic T | --group G)
set -euo pipefail
py=${CAIRN_KAFKA_VENV:-/var/tmp/cairn-kafka-venv}/bin/python
exec "$py" - "$@" <<'PY'
import sys, argparse
from confluent_kafka.admin import (AdminClient, AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, ResourcePatternType, ResourceType)

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap-server", required=True)
ap.add_argument("--add", action="store_true")
ap.add_argument("--remove", action="store_true")
ap.add_argument("--force", action="store_true")
ap.add_argument("--allow-principal")
ap.add_argument("--deny-principal")
ap.add_argument("--allow-host", default="*")
ap.add_argument("--deny-host", default="*")
ap.add_argument("--operation", required=True)
ap.add_argument("--topic")
ap.add_argument("--group")
a = ap.parse_args()
admin = AdminClient({"bootstrap.servers": a.bootstrap_server})
allow = a.allow_principal is not None
principal = (a.allow_principal if allow else a.deny_principal).strip("'")
host = (a.allow_host if allow else a.deny_host).strip("'")
permission = AclPermissionType.ALLOW if allow else AclPermissionType.DENY
operation = AclOperation[a.operation.upper()]
if a.topic:
    rtype, name = ResourceType.TOPIC, a.topic.strip("'")
elif a.group:
    rtype, name = ResourceType.GROUP, a.group.strip("'")
else:
    sys.exit("kafka-acls.sh: --topic or --group")
if a.add:
    f = admin.create_acls([AclBinding(rtype, name, ResourcePatternType.LITERAL, principal, host,
                                      operation, permission)])
elif a.remove:
    f = admin.delete_acls([AclBindingFilter(rtype, name, ResourcePatternType.LITERAL, principal,
                                            host, operation, permission)])
else:
    sys.exit("kafka-acls.sh: --add or --remove")
for fut in f.values():
    fut.result(timeout=60)
print("kafka-acls.sh: done")
PY
