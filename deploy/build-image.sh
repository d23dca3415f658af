#!/usr/bin/env bash
# `make image`: build eventcollab:<version> and eventcollab:latest from the Dockerfile.
#
#   bash deploy/build-image.sh               # docker where an engine answers, else podman
#   ENGINE=podman BASE=python:3.11-slim bash deploy/build-image.sh
#
# The base: $BASE if given; else python:3.11-slim when it can be pulled; else a Debian bookworm base
# made here from Debian's packages (mmdebstrap | <engine> import), kept as eventcollab-base:bookworm
# and reused by later builds (REBASE=1 makes it anew).
#
# Podman as root on this kind of machine needs `--runtime runc --cgroup-manager=cgroupfs` (crun fails on
# hybrid cgroups) and explicit ulimits (its defaults are refused); ENGINE_FLAGS overrides them.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-eventcollab}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
LOCAL_BASE=localhost/eventcollab-base:bookworm
CA=/etc/ssl/certs/ca-certificates.crt
started=$SECONDS

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'build-image.sh: %s\n' "$*" >&2; exit 1; }

# 1. the engine
if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null; then ENGINE=podman
  else die "neither a docker engine nor podman: apt-get install podman buildah (or install docker)"
  fi
fi
engine=("$ENGINE")
build_flags=()
if [ "$ENGINE" = podman ]; then
  # shellcheck disable=SC2206 # word splitting wanted: a list of flags
  engine+=(${ENGINE_FLAGS:---runtime runc --cgroup-manager=cgroupfs})
  # docker format: keeps HEALTHCHECK (the OCI format has no field for it)
  build_flags+=(--format docker --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
fi
# the host's CA bundle over the image's, for outbound TLS through this machine's CA (a no-op elsewhere)
if [ -f "$CA" ] && [ "$ENGINE" = podman ]; then build_flags+=(-v "$CA:$CA:ro"); fi
say "engine: ${engine[*]}"

# 2. the base
if [ -z "${BASE:-}" ]; then
  say "trying to pull python:3.11-slim (60 s at most)"
  if timeout 60 "${engine[@]}" pull -q docker.io/library/python:3.11-slim >/dev/null 2>&1; then
    BASE=docker.io/library/python:3.11-slim
  else
    echo "python:3.11-slim cannot be pulled here: using a Debian base made with mmdebstrap" >&2
    BASE=$LOCAL_BASE
    if [ -n "${REBASE:-}" ] || ! "${engine[@]}" image inspect "$BASE" >/dev/null 2>&1; then
      command -v mmdebstrap >/dev/null || die "no mmdebstrap to make a base: apt-get install mmdebstrap"
      say "making $BASE: mmdebstrap --variant=minbase bookworm (a few minutes; Debian's progress below)"
      mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd bookworm - \
        | "${engine[@]}" import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    else
      echo "reusing $BASE (REBASE=1 makes it anew)" >&2
    fi
  fi
fi
say "base: $BASE"

# 3. the image
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- app pyproject.toml requirements.lock 2>/dev/null; then revision+="-dirty"; fi
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "building $IMAGE:$VERSION from the Dockerfile (revision $revision)"
"${engine[@]}" build "${build_flags[@]}" --network=host \
  --build-arg "BASE=$BASE" --build-arg "VERSION=$VERSION" \
  --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
  -t "$IMAGE:$VERSION" -t "$IMAGE:latest" .

size=$("${engine[@]}" image inspect --format '{{.Size}}' "$IMAGE:$VERSION")
user=$("${engine[@]}" image inspect --format '{{.Config.User}}' "$IMAGE:$VERSION")
say "built in $((SECONDS - started)) s"
printf '  tags     %s:%s, %s:latest\n  base     %s\n  size     %s MB\n  user     %s\n' \
  "$IMAGE" "$VERSION" "$IMAGE" "$BASE" "$((size / 1000000))" "$user"
printf '  run it   %s run --rm --network=host -e HOST=127.0.0.1 %s:%s\n' "$ENGINE" "$IMAGE" "$VERSION"
