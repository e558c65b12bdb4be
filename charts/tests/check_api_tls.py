#!/usr/bin/env python3
"""Checks the chart rendered with api.tls.existingSecret (validate.sh runs it).

Usage: kubectl create --dry-run=client -o json -f RENDERED | check_api_tls.py SECRET

The API mounts only the certificate and key of SECRET and serves TLS with them,
its probes use HTTPS, and the dashboard reaches it over https trusting only the
CA certificate of SECRET (never mounting its key). Exits 1 with the reason if not.
"""
import sys

from rendered import read_objects

secret = sys.argv[1]

objects = read_objects(sys.stdin.read())
pods = {
    o["metadata"]["name"]: o["spec"]["template"]["spec"]
    for o in objects
    if o["kind"] == "Deployment"
}


def env(pod):
    return {e["name"]: e.get("value") for e in pod["containers"][0].get("env", [])}


def keys_of(pod):
    """The keys of SECRET each volume of `pod` projects."""
    return [
        sorted(item["key"] for item in v["secret"].get("items", []))
        for v in pod.get("volumes", [])
        if v.get("secret", {}).get("secretName") == secret
    ]


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: {got!r}, expected {want!r}")


api = pods["aurum-api"]
dashboard = pods["aurum-dashboard"]
expect("API AURUM_TLS_CERT_FILE", env(api).get("AURUM_TLS_CERT_FILE"), "/etc/aurum/tls/tls.crt")
expect("API AURUM_TLS_KEY_FILE", env(api).get("AURUM_TLS_KEY_FILE"), "/etc/aurum/tls/tls.key")
expect("API volumes of the TLS Secret", keys_of(api), [["tls.crt", "tls.key"]])
for probe in ("livenessProbe", "readinessProbe"):
    expect(f"API {probe} scheme", api["containers"][0][probe]["httpGet"].get("scheme"), "HTTPS")
expect("dashboard AURUM_API_URL", env(dashboard).get("AURUM_API_URL"), "https://aurum-api:8000")
expect("dashboard AURUM_API_CA_FILE", env(dashboard).get("AURUM_API_CA_FILE"), "/etc/aurum/api-ca/ca.crt")
expect("dashboard volumes of the TLS Secret", keys_of(dashboard), [["ca.crt"]])
