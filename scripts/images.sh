#!/usr/bin/env bash
# Aurum's container images without Docker: buildah (chroot isolation, storage of
# its own), a Debian base made by mmdebstrap, binaries built by cargo
# on this machine. Writes each image as an OCI archive for
# `ctr -n k8s.io images import`, `skopeo copy` or `podman load`.
#
#   scripts/images.sh [aurum] [DIR]   `make images`: operator, job-runner, api and
#                                     dashboard, from the root Dockerfile's runtime
#                                     stages, as localhost/aurum-<component>:<appVersion>
#   scripts/images.sh test [DIR]      `make test-images`: the test-only PostgreSQL
#                                     and Hadoop images of testenv/images/ for the
#                                     chart's quickstart (localhost/aurum-test-postgres:17,
#                                     localhost/aurum-test-hadoop:<Hadoop version>)
#   scripts/images.sh all [DIR]       both
#   scripts/images.sh clean [DIR]     unmount what a killed build left, remove DIR
#
# DIR (default $AURUM_CACHE/images, AURUM_CACHE default ~/.cache/aurum) holds
# everything: storage/<driver>/ (buildah's, never the system's), base/ (the
# Debian root tarballs), bin/ (the binaries as packaged), oci/ (the archives),
# logs/ (each build's output). Prints on
# stdout, as KEY=VALUE lines:
#   AURUM_IMAGES_DIR=DIR
#   AURUM_IMAGE_ARCHIVES="DIR/oci/aurum-operator-0.1.0.tar ..."   (those of this run)
#   AURUM_IMAGE_<NAME>=localhost/aurum-<name>:<tag>   (NAME e.g. OPERATOR, JOB_RUNNER,
#                                                      TEST_POSTGRES, TEST_HADOOP)
# and a table of the images and their sizes on stderr.
#
# The binaries (aurum): AURUM_IMAGE_PROFILE=release (default) runs
# `cargo build --release --locked --workspace --bins` and packages
# $CARGO_TARGET_DIR/release/aurum-* as they are, as the Dockerfile's build stages
# do; AURUM_IMAGE_PROFILE=debug runs `cargo build --locked --workspace --bins`
# (what `make test` already ran, so a no-op there) and packages
# $CARGO_TARGET_DIR/debug/aurum-* with their debug info stripped.
# AURUM_IMAGE_CARGO=0 skips cargo and packages what is there. CARGO_TARGET_DIR
# defaults to $AURUM_CACHE/target, as in the Makefile.
#
# Other settings: AURUM_IMAGE_COMPONENTS (a subset of the four, e.g. "operator"),
# AURUM_IMAGE_STORAGE_DRIVER (default overlay when an overlay
# mount works under DIR, else vfs), AURUM_IMAGE_REGISTRY (default localhost: the name prefix;
# the chart then takes --set image.registry=localhost), AURUM_DEBIAN_MIRROR and
# AURUM_DEBIAN_SECURITY_MIRROR (default: the ones in this machine's apt sources).
#
# What is cached, and so what a warm run skips: the base root (keyed by suite,
# mirrors and the mmdebstrap recipe below), buildah's layer cache (the runtime
# stage's RUN steps), and each archive (keyed by the hash of everything that goes
# into it: Dockerfile, files copied, base image, binary). `clean` starts afresh;
# deleting DIR/base takes Debian's newest packages into the base.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${AURUM_CACHE:-$HOME/.cache/aurum}
profile=${AURUM_IMAGE_PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-$cache/target}
registry=${AURUM_IMAGE_REGISTRY:-localhost}
suite=trixie
# AURUM_IMAGE_COMPONENTS: a subset, e.g. "operator api" (default: all four)
read -r -a components <<< "${AURUM_IMAGE_COMPONENTS:-operator job-runner api dashboard}"

log() { echo "images.sh: $*" >&2; }
die() { echo "images.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: scripts/images.sh [aurum|test|all|clean] [DIR]" >&2
  exit 2
}

what=aurum
case "${1:-}" in
  aurum|test|all|clean) what=$1; shift ;;
esac
[ "$#" -le 1 ] || usage
dir=${1:-$cache/images}
case "$profile" in release|debug) ;; *) die "AURUM_IMAGE_PROFILE must be release or debug, not '$profile'" ;; esac

# --- tools ------------------------------------------------------------------------

need_tools() {
  local missing=() t
  for t in buildah mmdebstrap objcopy; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  # objcopy is binutils'; the rest are Debian packages of the same names.
  local pkgs=() m
  for m in "${missing[@]}"; do
    case "$m" in objcopy) pkgs+=(binutils) ;; *) pkgs+=("$m") ;; esac
  done
  log "installing ${pkgs[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; } ||
    die "could not install ${pkgs[*]}"
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# One build at a time per DIR: buildah's storage is shared.
exec 9>"$dir/.lock"
flock 9

if [ "$what" = clean ]; then
  # Whatever a killed build left mounted, then everything.
  findmnt -rn -o TARGET | grep "^$dir/" | sort -r | xargs -r umount 2>/dev/null || true
  rm -rf "$dir"
  log "removed $dir"
  exit 0
fi

# The storage driver: overlay where the kernel and the file system under DIR
# allow it (a layer costs only its own files; measured twice as fast as vfs on
# the test images), else vfs (every layer and container a full copy).
overlay_works() {
  local p=$dir/.overlay-probe rc=0
  rm -rf "$p"
  mkdir -p "$p/lower" "$p/upper" "$p/work" "$p/merged"
  mount -t overlay overlay -o "lowerdir=$p/lower,upperdir=$p/upper,workdir=$p/work" "$p/merged" 2>/dev/null || rc=1
  [ "$rc" = 0 ] && umount "$p/merged"
  rm -rf "$p"
  return "$rc"
}
driver=${AURUM_IMAGE_STORAGE_DRIVER:-}
if [ -z "$driver" ]; then
  if overlay_works; then driver=overlay; else driver=vfs; fi
fi
storage=$dir/storage/$driver

# buildah with its own storage, registries and policy: nothing from the system's
# configuration, and no short name resolves to a registry.
mkdir -p "$dir/etc"
printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' > "$dir/etc/registries.conf"
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' > "$dir/etc/policy.json"
export CONTAINERS_REGISTRIES_CONF=$dir/etc/registries.conf
policy=(--signature-policy "$dir/etc/policy.json")
export BUILDAH_ISOLATION=chroot
bah() {
  buildah --root "$storage" --runroot "$dir/runroot" --storage-driver "$driver" "$@"
}

# --- the Debian base ----------------------------------------------------------------

# The mirrors of this machine's apt sources (deb822 or one-line format).
apt_uris() {
  {
    cat /etc/apt/sources.list 2>/dev/null || true
    cat /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true
  } | sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]\+\).*/\2/p' |
    tr ' ' '\n' | sed '/^$/d'
}
mirror=${AURUM_DEBIAN_MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -n 1 || true)}
security=${AURUM_DEBIAN_SECURITY_MIRROR:-$(apt_uris | grep -E '/debian-security/?$' | head -n 1 || true)}
mirror=${mirror%/}
security=${security%/}

# The recipe of the base: Debian's minbase, configured as Debian's `-slim` images
# are (no documentation, manual pages or translations; apt keeps no caches), with
# the same suites in its apt sources. Changing any of it changes the key.
base_recipe() {
  echo "suite=$suite"
  echo "variant=minbase"
  echo "mirror=$mirror"
  echo "security=$security"
  printf '%s\n' "${dpkg_opts[@]}" "${apt_opts[@]}"
}
dpkg_opts=(
  # as debian's images: no fsync per file (a build, not a live system)
  'force-unsafe-io'
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/groff/*'
  'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/lintian/*'
  'path-exclude=/usr/share/linda/*'
  'path-exclude=/usr/share/locale/*'
  'path-include=/usr/share/locale/locale.alias'
)
apt_opts=(
  'Acquire::Languages "none"'
  'Dir::Cache::pkgcache ""'
  'Dir::Cache::srcpkgcache ""'
  'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }'
  'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }'
  'APT::AutoRemove::SuggestsImportant "false"'
)

base_image=""
base_sum=""
ensure_base() {
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources; set AURUM_DEBIAN_MIRROR"
  local key tar
  key=$(base_recipe | sha256sum | cut -c1-16)
  tar=$dir/base/debian-$suite-$key.tar
  # A name of buildah's storage only: never pushed.
  base_image=localhost/aurum-base:$suite-$key
  if [ -s "$tar" ] && [ -s "$tar.sha256" ] && bah inspect --type image "$base_image" >/dev/null 2>&1; then
    base_sum=$(cat "$tar.sha256")
    return 0
  fi
  if [ ! -s "$tar" ]; then
    local t0=$SECONDS sources o args=()
    mkdir -p "$dir/base"
    rm -rf "$tar.tmp"
    sources="deb $mirror $suite main
deb $mirror $suite-updates main"
    [ -z "$security" ] || sources="$sources
deb $security $suite-security main"
    for o in "${dpkg_opts[@]}"; do args+=(--dpkgopt="$o"); done
    for o in "${apt_opts[@]}"; do args+=(--aptopt="$o"); done
    log "making the Debian $suite base root with mmdebstrap (once; from $mirror)"
    if ! mmdebstrap --quiet --variant=minbase --format=tar "${args[@]}" "$suite" "$tar.tmp" - \
        <<< "$sources" >"$dir/base/mmdebstrap.log" 2>&1; then
      tail -n 20 "$dir/base/mmdebstrap.log" >&2
      die "mmdebstrap failed (log: $dir/base/mmdebstrap.log)"
    fi
    mv "$tar.tmp" "$tar"
    rm -f "$tar.sha256"
    log "base root made in $((SECONDS - t0)) s: $tar ($(du -h "$tar" | cut -f1))"
  fi
  # The archives' keys name the base by its contents, so that a base made
  # again (newer packages) rebuilds them and a storage made again does not.
  [ -s "$tar.sha256" ] || sha256sum < "$tar" | cut -d' ' -f1 > "$tar.sha256"
  base_sum=$(cat "$tar.sha256")
  log "importing the base root as $base_image"
  bah rmi "$base_image" >/dev/null 2>&1 || true
  local c
  c=$(bah from "${policy[@]}" --pull=never scratch)
  bah add "$c" "$tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash "$c"
  bah commit --quiet --rm "$c" "$base_image" >/dev/null
  # Older bases (another recipe) are of no further use.
  local old
  for old in $(bah images --format '{{.Name}}:{{.Tag}}' | grep "^localhost/aurum-base:" | grep -vxF "$base_image" || true); do
    bah rmi "$old" >/dev/null 2>&1 || true
  done
  find "$dir/base" -mindepth 1 -maxdepth 1 -name "debian-*" ! -name "$(basename "$tar")*" -exec rm -rf {} +
}

# --- building ------------------------------------------------------------------------

# inputs_key FILE...: one hash over the named files and directories (contents
# and relative names) and the string $extra.
inputs_key() {
  {
    printf '%s\n' "$extra"
    local p
    for p in "$@"; do
      # contents and names relative to the argument: the same key from any checkout
      if [ -d "$p" ]; then
        (cd "$p" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
      else
        echo "$(sha256sum < "$p" | cut -d' ' -f1)  $(basename "$p")"
      fi
    done
  } | sha256sum | cut -d' ' -f1
}

built_archives=()
settings=()

# build NAME IMAGE KEY ARCHIVE BUD-ARGS...: buildah bud unless ARCHIVE was made
# from the same inputs, then push it to ARCHIVE.
build() {
  local name=$1 image=$2 key=$3 archive=$4
  shift 4
  local stamp=$archive.inputs
  if [ -s "$archive" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -s "$archive.unpacked" ]; then
    log "$image: unchanged, kept $archive"
  else
    local t0=$SECONDS
    log "building $image"
    if ! bah bud "${policy[@]}" --isolation chroot --layers --pull=never \
        --build-arg BASE_IMAGE="$base_image" -t "$image" "$@" >"$dir/logs/$name.log" 2>&1; then
      tail -n 30 "$dir/logs/$name.log" >&2
      die "building $image failed (log: $dir/logs/$name.log)"
    fi
    rm -f "$archive" "$stamp" "$archive.unpacked"
    bah push "${policy[@]}" --quiet "$image" "oci-archive:$archive.tmp:$image" >>"$dir/logs/$name.log" 2>&1 ||
      die "writing $archive failed (log: $dir/logs/$name.log)"
    mv "$archive.tmp" "$archive"
    unpacked_size "$archive" > "$archive.unpacked"
    echo "$key" > "$stamp"
    log "$image built in $((SECONDS - t0)) s"
  fi
  built_archives+=("$archive")
  local var
  var=$(echo "$name" | tr 'a-z-' 'A-Z_')
  settings+=("AURUM_IMAGE_$var=$image")
}

app_version() {
  sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' "$repo/charts/aurum/Chart.yaml"
}

# The binaries, as the build-<component> stages would leave them: DIR/out/aurum-*.
stage_binaries() {
  local bindir=$dir/bin/$profile c src dst
  if [ "${AURUM_IMAGE_CARGO:-1}" != 0 ]; then
    local args=(build --locked --workspace --bins)
    [ "$profile" = release ] && args+=(--release)
    log "cargo ${args[*]} (CARGO_TARGET_DIR=$target_dir)"
    (cd "$repo" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo "${args[@]}") >&2 ||
      die "cargo ${args[*]} failed"
  fi
  mkdir -p "$bindir/out"
  for c in "${components[@]}"; do
    src=$target_dir/$profile/aurum-$c
    dst=$bindir/out/aurum-$c
    [ -x "$src" ] || die "no $src (build it, or unset AURUM_IMAGE_CARGO=0)"
    if [ "$profile" = debug ]; then
      # An unoptimised binary carries DWARF for every crate: only the symbols
      # stay (for backtraces), the image is smaller by that much.
      objcopy --strip-debug "$src" "$dst.tmp"
    else
      cp "$src" "$dst.tmp"
    fi
    if cmp -s "$dst.tmp" "$dst"; then rm -f "$dst.tmp"; else mv "$dst.tmp" "$dst"; fi
  done
  stage=$bindir
}

build_aurum() {
  local version c image archive key contexts=()
  version=$(app_version)
  [ -n "$version" ] || die "no appVersion in charts/aurum/Chart.yaml"
  stage_binaries
  # Every build-* stage the Dockerfile has is replaced, whichever is built.
  for c in operator job-runner api dashboard; do contexts+=(--build-context "build-$c=$stage"); done
  for c in "${components[@]}"; do
    image=$registry/aurum-$c:$version
    archive=$dir/oci/aurum-$c-$version.tar
    extra="$image $base_sum target=$c"
    local files=("$repo/Dockerfile" "$repo/.dockerignore" "$stage/out/aurum-$c")
    [ "$c" = job-runner ] && files+=("$repo/source")
    key=$(inputs_key "${files[@]}")
    build "$c" "$image" "$key" "$archive" "${contexts[@]}" --target "$c" \
      -f "$repo/Dockerfile" "$repo"
  done
}

hadoop_version() {
  sed -n 's:.*<hadoop.version>\(.*\)</hadoop.version>.*:\1:p' "$repo/testenv/hdfs/pom.xml" | head -n 1
}

build_test() {
  local image archive key lib_env lib
  image=$registry/aurum-test-postgres:17
  archive=$dir/oci/aurum-test-postgres-17.tar
  extra="$image $base_sum"
  key=$(inputs_key "$repo/testenv/images/postgres")
  build test-postgres "$image" "$key" "$archive" \
    -f "$repo/testenv/images/postgres/Dockerfile" "$repo/testenv"

  # The jars testenv/hdfs.sh runs, fetched once by Maven into the cache; the
  # Dockerfile's `jars` stage is replaced by that directory (lib/ and web/).
  lib_env=$("$repo/testenv/hdfs.sh" jars) || die "testenv/hdfs.sh jars failed"
  lib=$(sed -n 's/^AURUM_HDFS_LIB=//p' <<< "$lib_env")
  [ -d "$lib" ] && [ -d "$(dirname "$lib")/web" ] || die "no jars in $lib"
  local version
  version=$(hadoop_version)
  image=$registry/aurum-test-hadoop:$version
  archive=$dir/oci/aurum-test-hadoop-$version.tar
  extra="$image $base_sum"
  key=$(inputs_key "$repo/testenv/images/hadoop" "$lib/.aurum-pom-sha256" "$(dirname "$lib")/web")
  build test-hadoop "$image" "$key" "$archive" \
    --build-context "jars=$(dirname "$lib")" \
    -f "$repo/testenv/images/hadoop/Dockerfile" "$repo/testenv"
}

# --- sizes ---------------------------------------------------------------------------

# unpacked_size ARCHIVE: the bytes of all layers, uncompressed (their tar streams).
unpacked_size() {
  local archive=$1 tmp total=0 d n
  tmp=$(mktemp -d)
  tar -xf "$archive" -C "$tmp" index.json
  d=$(sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' "$tmp/index.json" | head -n 1)
  tar -xf "$archive" -C "$tmp" "blobs/sha256/$d"
  for d in $(tr ',' '\n' < "$tmp/blobs/sha256/$d" | sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' | tail -n +2); do
    n=$(tar -xOf "$archive" "blobs/sha256/$d" | gzip -dc | wc -c)
    total=$((total + n))
  done
  rm -rf "$tmp"
  echo "$total"
}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }

report() {
  local a
  log "images (OCI archives; import with: ctr -n k8s.io images import ARCHIVE):"
  for a in "${built_archives[@]}"; do
    local ref
    ref=$(tar -xOf "$a" index.json | sed -n 's/.*"org.opencontainers.image.ref.name":"\([^"]*\)".*/\1/p')
    printf 'images.sh:   %-42s %s  archive %s, unpacked %s\n' "$ref" "$a" \
      "$(mb "$(stat -c %s "$a")")" "$(mb "$(cat "$a.unpacked" 2>/dev/null || unpacked_size "$a")")" >&2
  done
}

# --- main ----------------------------------------------------------------------------

t0=$SECONDS
need_tools
mkdir -p "$dir/oci" "$dir/logs"
ensure_base
case "$what" in
  aurum) build_aurum ;;
  test) build_test ;;
  all) build_aurum; build_test ;;
esac
# Images and layers no tag refers to any more (earlier builds) go; the layer
# cache of the current ones stays.
bah rmi --prune >/dev/null 2>&1 || true
report
log "done in $((SECONDS - t0)) s (storage: $storage, driver $driver)"

echo "AURUM_IMAGES_DIR=$dir"
echo "AURUM_IMAGE_ARCHIVES=\"${built_archives[*]}\""
printf '%s\n' "${settings[@]}"
