# Run with Debian's /usr/bin/python3. Reads /metrics text on stdin with the Prometheus project's OpenMetrics parser (python3-prometheus-client) and
# prints every sample as JSON: [{"name", "labels", "value", "type"}]. A text the parser refuses exits non-zero.
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
print(json.dumps(out))
