"""Reload latency of a running `mailrules serve`: rename a new version of
profiles.yaml into place (as editors save) and time until GET /v1/config
shows the next generation. Prints p50, p95 and max against the debounce.
Usage: reload_latency.py URL CONFIG_DIR CHANGES DEBOUNCE_MS"""
import json
import os
import statistics
import sys
import time
import urllib.request

url, config, changes, debounce_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
profiles = os.path.join(config, "profiles.yaml")
original = open(profiles, encoding="utf-8").read()


def generation():
    with urllib.request.urlopen(url + "/v1/config") as response:
        return json.load(response)["generation"]


latencies = []
for change in range(1, changes + 1):
    expected = generation() + 1
    temporary = profiles + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(original + "\n# change %d\n" % change)
    os.rename(temporary, profiles)
    started = time.monotonic()
    while generation() < expected:
        if time.monotonic() - started > 10:
            sys.exit("change %d: no new generation within 10 s" % change)
        time.sleep(0.001)
    latencies.append((time.monotonic() - started) * 1000)

latencies.sort()
p50 = statistics.median(latencies)
p95 = latencies[int(len(latencies) * 0.95) - 1]
target = debounce_ms + 100
print("reload latency over %d changes: p50 %.0f ms, p95 %.0f ms, max %.0f ms" % (
    len(latencies), p50, p95, latencies[-1]))
print("  = debounce + %.0f ms at p95 (target: under debounce + 100 ms = %d ms: %s)" % (
    p95 - debounce_ms, target, "met" if p95 < target else "NOT met"))
