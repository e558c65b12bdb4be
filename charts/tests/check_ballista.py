#!/usr/bin/env python3
"""Checks the chart rendered with ballista.enabled (validate.sh runs it).

Usage: kubectl create --dry-run=client -o json -f RENDERED |
         check_ballista.py FULLNAME SCHEDULER-PORT EXECUTORS CONCURRENT-TASKS LAKE

LAKE is `hdfs:CONFIGMAP` (the Hadoop configuration mounted as the Jobs have
it) or `pvc:CLAIM:MOUNTPATH` (a file:// lake's claim mounted in every pod).

What the job-runner's Ballista entry points and the operator's runs rely on:
the scheduler is one pod behind a Service on SCHEDULER-PORT, announcing its pod
IP for the executors' callbacks; the executors (EXECUTORS of them) dial that
Service, announce their pod IP (downward API),
run CONCURRENT-TASKS tasks, keep their shuffle files on the /tmp emptyDir; the
probes are tcpSocket probes on ports the container declares; both reach the
lake; the example DataLake's spec.engine names the scheduler Service. Exits 1
with every reason if not.
"""
import sys

from rendered import read_objects

fullname, port, replicas, tasks, lake = sys.argv[1:6]
port, replicas = int(port), int(replicas)
scheduler, executor = f"{fullname}-ballista-scheduler", f"{fullname}-ballista-executor"
bad = []
objects = read_objects(sys.stdin.read())


def find(kind, name):
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    bad.append(f"no {kind} {name}")
    return None


def flag(args, name):
    """The value after `name` in a container's args."""
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def announces_pod_ip(name, args, env):
    """The address others reach the pod at is its pod IP, from the downward API."""
    if flag(args, "--external-host") != "$(POD_IP)" or \
            env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "status.podIP":
        bad.append(f"{name}: does not announce its pod IP (--external-host $(POD_IP) from status.podIP)")


def check_pod(deploy, command):
    pod = deploy["spec"]["template"]["spec"]
    name = deploy["metadata"]["name"]
    c = pod["containers"][0]
    args = c.get("args", [])
    if c.get("command") != ["aurum-job-runner"] or args[:1] != [command]:
        bad.append(f"{name}: runs {c.get('command')} {args[:1]}, not aurum-job-runner {command}")
    if pod.get("automountServiceAccountToken") is not False:
        bad.append(f"{name}: mounts an API token")
    if pod.get("serviceAccountName") != f"{fullname}-job-runner":
        bad.append(f"{name}: ServiceAccount {pod.get('serviceAccountName')}, not the job-runner's")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe in ("livenessProbe", "readinessProbe"):
        target = c.get(probe, {}).get("tcpSocket", {}).get("port")
        if target not in ports and target not in ports.values():
            bad.append(f"{name}: {probe} is not a tcpSocket probe on a declared port ({target})")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        bad.append(f"{name}: no emptyDir at /tmp (the root filesystem is read-only)")
    env = {e["name"]: e for e in c.get("env", [])}
    kind, _, rest = lake.partition(":")
    if kind == "hdfs":
        cm = volumes.get(mounts.get("/etc/hadoop/conf", ""), {}).get("configMap", {}).get("name")
        if cm != rest or env.get("HADOOP_CONF_DIR", {}).get("value") != "/etc/hadoop/conf":
            bad.append(f"{name}: Hadoop configuration {cm!r} at /etc/hadoop/conf, expected {rest!r}")
    else:
        claim, _, path = rest.partition(":")
        vol = volumes.get(mounts.get(path, ""), {})
        if vol.get("persistentVolumeClaim", {}).get("claimName") != claim:
            bad.append(f"{name}: claim {claim} not mounted at {path}")
    return pod, c, args, ports, env


d = find("Deployment", scheduler)
if d:
    pod, c, args, ports, env = check_pod(d, "ballista-scheduler")
    # The executors call back at it with their tasks' status.
    announces_pod_ip(scheduler, args, env)
    if d["spec"].get("replicas") != 1 or d["spec"].get("strategy", {}).get("type") != "Recreate":
        bad.append(f"{scheduler}: not one replica replaced with Recreate")
    if flag(args, "--port") != str(port) or ports.get("grpc") != port:
        bad.append(f"{scheduler}: --port {flag(args, '--port')}, grpc port {ports.get('grpc')}, expected {port}")
    if flag(args, "--bind-host") != "0.0.0.0":
        bad.append(f"{scheduler}: does not bind every address")
    labels = d["spec"]["template"]["metadata"]["labels"]
    s = find("Service", scheduler)
    if s:
        sel = s["spec"]["selector"]
        if any(labels.get(k) != v for k, v in sel.items()):
            bad.append(f"Service {scheduler} selects {sel}, not the scheduler's pods")
        sp = [(p["port"], p.get("targetPort")) for p in s["spec"]["ports"]]
        if sp != [(port, "grpc")]:
            bad.append(f"Service {scheduler}: ports {sp}, expected [({port}, 'grpc')]")

d = find("Deployment", executor)
if d:
    pod, c, args, ports, env = check_pod(d, "ballista-executor")
    if d["spec"].get("replicas") != replicas:
        bad.append(f"{executor}: {d['spec'].get('replicas')} replicas, expected {replicas}")
    if flag(args, "--scheduler") != f"{scheduler}:{port}":
        bad.append(f"{executor}: --scheduler {flag(args, '--scheduler')}, expected {scheduler}:{port}")
    announces_pod_ip(executor, args, env)
    if flag(args, "--concurrent-tasks") != tasks:
        bad.append(f"{executor}: --concurrent-tasks {flag(args, '--concurrent-tasks')}, expected {tasks}")
    for f, p in (("--flight-port", "flight"), ("--grpc-port", "grpc")):
        if flag(args, f) != str(ports.get(p)):
            bad.append(f"{executor}: {f} {flag(args, f)} is not its declared {p} port {ports.get(p)}")
    if not (flag(args, "--work-dir") or "").startswith("/tmp/"):
        bad.append(f"{executor}: --work-dir {flag(args, '--work-dir')} is not on the /tmp emptyDir")

lakes = [o for o in objects if o["kind"] == "DataLake"]
want = f"ballista://{scheduler}:{port}"
for o in lakes:
    if o["spec"].get("engine") != want:
        bad.append(f"DataLake {o['metadata']['name']}: engine {o['spec'].get('engine')}, expected {want}")
for o in objects:
    if o["kind"] == "Datamart" and "engine" in o["spec"]:
        bad.append(f"Datamart {o['metadata']['name']}: sets its own engine instead of taking the DataLake's")

print(f"{len(objects)} objects, {len(lakes)} DataLake(s)")
print("\n".join(bad))
sys.exit(1 if bad else 0)
