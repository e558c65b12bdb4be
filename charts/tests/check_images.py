#!/usr/bin/env python3
"""Static checks of the Dockerfile against the workspace, the chart and the
guide, for a machine without a container engine (validate.sh runs it).

Usage: check_images.py REPO CARGO_METADATA_JSON

Prints one `ok`/`FAIL` line per check; exits 1 if any failed.
"""
import json
import re
import sys
from pathlib import Path

repo = Path(sys.argv[1])
metadata = json.loads(Path(sys.argv[2]).read_text())
components = ["operator", "job-runner", "api", "dashboard"]
failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"))
    if not ok:
        failures += 1


# Dockerfile stages: name -> (base, instructions).
stages, order, current = {}, [], None
lines = (repo / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
for raw in lines:
    line = raw.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
        if not m:
            check(f"FROM line parses: {rest}", False)
        else:
            current = m.group(2) or f"stage{len(order)}"
            stages[current] = {"base": m.group(1), "ins": []}
            order.append(current)
    elif current is not None:
        stages[current]["ins"].append((word, rest))


def chain(name):
    """The stage and its ancestors within the Dockerfile, nearest first."""
    out = []
    while name in stages:
        out.append(name)
        name = stages[name]["base"]
    return out


check(f"Dockerfile parses into {len(order)} stages", len(order) > 0, "")
binaries = {
    p["name"]: [t["name"] for t in p["targets"] if "bin" in t["kind"]]
    for p in metadata["packages"]
}
for c in components:
    check(f"Dockerfile has target {c}", c in stages)
    if c not in stages:
        continue
    ins = [i for s in chain(c) for i in stages[s]["ins"]]
    users = [rest for s in chain(c) for (w, rest) in stages[s]["ins"] if w == "USER"]
    check(f"{c}: runs as the non-root user 65532", bool(users) and users[0].split(":")[0] == "65532",
          str(users))
    entry = [rest for (w, rest) in stages[c]["ins"] if w == "ENTRYPOINT"]
    binary = f"aurum-{c}"
    check(f"{c}: ENTRYPOINT is {binary}", entry == [f'["{binary}"]'], str(entry))
    copies = [rest for (w, rest) in stages[c]["ins"] if w == "COPY" and rest.startswith("--from=")]
    check(f"{c}: copies /usr/local/bin/{binary} from an earlier build stage",
          any(r.split()[0][7:] in order[: order.index(c)] and r.endswith(f"/usr/local/bin/{binary}")
              for r in copies), str(copies))
    for r in copies:
        builder = r.split()[0][7:]
        runs = " ".join(rest for (w, rest) in stages.get(builder, {"ins": []})["ins"] if w == "RUN")
        m = re.search(r"cargo build .*?-p (\S+) --bin (\S+)", runs)
        check(f"{c}: stage {builder} builds a workspace binary with --locked",
              bool(m) and "--locked" in runs and m.group(2) in binaries.get(m.group(1), []),
              runs[:120])

# COPY sources exist and survive .dockerignore.
ignored = [l.strip() for l in (repo / ".dockerignore").read_text().splitlines()
           if l.strip() and not l.startswith("#")]
for name, st in stages.items():
    for (w, rest) in st["ins"]:
        if w != "COPY" or rest.startswith("--from="):
            continue
        *srcs, _dst = rest.split()
        for src in srcs:
            top = src.rstrip("/").split("/")[0]
            check(f"COPY {src} ({name}): exists and is not in .dockerignore",
                  (repo / src).exists() and top not in ignored and src not in ignored)
root = Path(metadata["workspace_root"])
for p in metadata["packages"]:
    crate = str(Path(p["manifest_path"]).parent.relative_to(root))
    copied = any(w == "COPY" and rest.split()[0] == crate for (w, rest) in stages["build"]["ins"])
    check(f"the build stage copies workspace member {crate}/", copied)

# The chart's default image names and tag are the ones the guide builds.
values = (repo / "charts/aurum/values.yaml").read_text()
app = re.search(r'^appVersion: "?([^"\n]+)"?', (repo / "charts/aurum/Chart.yaml").read_text(), re.M)
guide = (repo / "docs/kubernetes.md").read_text()
for c in components:
    check(f"values.yaml: image repository aurum-{c}", f"repository: aurum-{c}\n" in values)
check("docs/kubernetes.md builds every target as aurum-<target>:<appVersion>",
      bool(app) and f'docker build --target "$c" -t "aurum-$c:{app.group(1)}" .' in guide
      and "for c in operator job-runner api dashboard; do" in guide)
check("the job-runner image carries source/ where the chart's loader reads it",
      any(w == "COPY" and rest.split() == ["source/", "/usr/share/aurum/source/"]
          for (w, rest) in stages.get("job-runner", {"ins": []})["ins"])
      and "sourceDir: /usr/share/aurum/source\n" in values)

sys.exit(1 if failures else 0)
