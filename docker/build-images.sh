#!/usr/bin/env bash
# Build the local Docker images cloudrun-emulator needs (see docker/README.md).
#
#   docker/build-images.sh [--force] [IMAGE...]   build all of docker/images/*, or only IMAGE...
#   docker/build-images.sh --list                 print the tags this script manages
#
# Works without any image registry: the base image debian:bookworm-slim is
# pulled when a registry is reachable and otherwise made with mmdebstrap from
# the Debian mirror configured in the host's apt sources.
#
# Idempotent: an image is only (re)built when it is missing or the files in its
# directory changed (their hash is kept in the image label
# cloudrun-emulator.inputs-hash). Prints one line per image on success.
#
# Environment:
#   CLOUDRUN_EMULATOR_DEBIAN_MIRROR  Debian mirror URL for mmdebstrap (default: from host apt sources)
#   CLOUDRUN_EMULATOR_PULL_TIMEOUT   seconds allowed for `docker pull` of the base (default 60; 0 = don't pull)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly IMAGES_DIR="$SCRIPT_DIR/images"
readonly BASE_IMAGE="debian:bookworm-slim"
readonly BASE_SUITE="bookworm"
readonly TAG_PREFIX="cloudrun-emulator"
readonly TAG_VERSION="1"
readonly LABEL_OWNER="cloudrun-emulator"
readonly LABEL_HASH="cloudrun-emulator.inputs-hash"
readonly PULL_TIMEOUT="${CLOUDRUN_EMULATOR_PULL_TIMEOUT:-60}"

FORCE=0
WORK_DIR=""

die() { echo "build-images: $*" >&2; exit 1; }

cleanup() { if [[ -n $WORK_DIR ]]; then rm -rf -- "$WORK_DIR"; fi; }
trap cleanup EXIT

# A fresh log file under the private work dir; its content is shown only on failure.
new_log() { mktemp "$WORK_DIR/$1.XXXXXX.log"; }

fail_with_log() { # MESSAGE LOG
    echo "build-images: $1; output follows:" >&2
    sed 's/^/  | /' "$2" >&2
    exit 1
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null && return 0
    command -v apt-get >/dev/null || die "mmdebstrap is missing and there is no apt-get to install it"
    local log; log="$(new_log apt)"
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; } \
        >"$log" 2>&1 || fail_with_log "installing mmdebstrap failed" "$log"
}

# Print the sources.list lines ("deb URI SUITE main") to build a bookworm root
# from, taken from the host's apt configuration (both one-line *.list and
# deb822 *.sources files; apt itself parses them). Uses the host's bookworm,
# bookworm-updates and bookworm-security entries when the host is bookworm;
# otherwise the first Debian-style entry's URI with suite bookworm.
debian_sources() {
    if [[ -n ${CLOUDRUN_EMULATOR_DEBIAN_MIRROR:-} ]]; then
        echo "deb ${CLOUDRUN_EMULATOR_DEBIAN_MIRROR} $BASE_SUITE main"
        return 0
    fi
    command -v apt-get >/dev/null || return 0
    # shellcheck disable=SC2016 # $(...) are apt-get format fields, not shell
    apt-get indextargets --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null |
        awk -v suite="$BASE_SUITE" '
            $1 != "deb" || $4 != "main" { next }
            $3 == suite && main == ""                 { main = $2 }
            $3 == suite "-updates" && updates == ""   { updates = $2 }
            $3 == suite "-security" && security == "" { security = $2 }
            $3 !~ /[-\/]/ && $2 ~ /debian/ && deb == "" { deb = $2 }
            $3 !~ /[-\/]/ && other == ""              { other = $2 }
            END {
                if (main == "") { main = (deb != "" ? deb : other); updates = ""; security = "" }
                if (main == "") exit
                print "deb " main " " suite " main"
                if (updates != "")  print "deb " updates " " suite "-updates main"
                if (security != "") print "deb " security " " suite "-security main"
            }'
}

# mmdebstrap a minbase bookworm root (plus EXTRA_PACKAGES, comma separated) and
# `docker import` it as TAG, configured like the official -slim image (merged
# /usr, dpkg excludes for docs/man/locales, PATH, CMD bash). EXTRA_PACKAGES is
# the fallback for hosts where `apt-get install` cannot run inside `docker
# build`; nothing uses it today because that works.
import_debian_root() { # TAG [EXTRA_PACKAGES]
    local tag=$1 include=${2:-}
    ensure_mmdebstrap
    local -a sources=()
    mapfile -t sources < <(debian_sources)
    [[ ${#sources[@]} -gt 0 ]] ||
        die "no Debian mirror found in the host's apt sources; set CLOUDRUN_EMULATOR_DEBIAN_MIRROR"
    local -a opts=(--variant=minbase --format=tar --components=main)
    # Merged /usr via usr-is-merged, as in the official images (otherwise the
    # usrmerge package and all of perl get installed).
    local hooks=/usr/share/mmdebstrap/hooks/merged-usr
    [[ -d $hooks ]] && opts+=("--hook-dir=$hooks")
    [[ -n $include ]] && opts+=("--include=$include")
    local p
    for p in /usr/share/doc/'*' /usr/share/groff/'*' /usr/share/info/'*' /usr/share/linda/'*' \
             /usr/share/lintian/overrides/'*' /usr/share/locale/'*' /usr/share/man/'*'; do
        opts+=("--dpkgopt=path-exclude=$p")
    done
    opts+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")

    local log id=""; log="$(new_log mmdebstrap)"
    if ! id="$(as_root mmdebstrap "${opts[@]}" "$BASE_SUITE" - "${sources[@]}" 2>"$log" |
               docker import --change 'CMD ["bash"]' \
                   --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                   --change "LABEL $LABEL_OWNER.base-source=mmdebstrap" - 2>>"$log")"; then
        if [[ -n $id ]]; then docker image rm "$id" >/dev/null 2>&1 || true; fi
        fail_with_log "making $tag with mmdebstrap failed" "$log"
    fi
    docker tag "$id" "$tag"
    echo "$tag: imported (mmdebstrap $BASE_SUITE minbase${include:+ +$include} from ${sources[0]#deb })"
}

ensure_base() {
    if image_exists "$BASE_IMAGE"; then
        echo "$BASE_IMAGE: present"
        return 0
    fi
    if [[ $PULL_TIMEOUT != 0 ]] && timeout "$PULL_TIMEOUT" docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "$BASE_IMAGE: pulled"
        return 0
    fi
    import_debian_root "$BASE_IMAGE"
}

# sha256 over the sorted list of files (path, mode, content) of a directory.
inputs_hash() { # DIR
    (
        cd "$1"
        find . -type f -printf '%m %p\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    ) | sha256sum | awk '{ print "sha256:" $1 }'
}

# Build docker/images/DIR/Dockerfile as NAME unless NAME exists with the same inputs hash.
build_image() { # NAME DIR
    local name=$1 ctx="$IMAGES_DIR/$2"
    [[ -f $ctx/Dockerfile ]] || die "$ctx/Dockerfile does not exist"
    local hash current old_id log
    hash="$(inputs_hash "$ctx")"
    current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_HASH\" }}" "$name" 2>/dev/null || true)"
    if [[ $FORCE == 0 && $current == "$hash" ]]; then
        echo "$name: up to date"
        return 0
    fi
    old_id="$(docker image inspect --format '{{ .Id }}' "$name" 2>/dev/null || true)"
    log="$(new_log build)"
    docker build --force-rm \
        --label "$LABEL_OWNER=true" --label "$LABEL_HASH=$hash" \
        -t "$name" "$ctx" >"$log" 2>&1 || fail_with_log "building $name failed" "$log"
    # Drop the image the tag pointed to before, unless something still uses it.
    if [[ -n $old_id && $old_id != "$(docker image inspect --format '{{ .Id }}' "$name")" ]]; then
        docker image rm "$old_id" >/dev/null 2>&1 || true
    fi
    echo "$name: built ($hash)"
}

image_tag() { echo "$TAG_PREFIX/$1:$TAG_VERSION"; }

all_image_dirs() {
    local d
    for d in "$IMAGES_DIR"/*/; do
        if [[ -f $d/Dockerfile ]]; then basename "$d"; fi
    done
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
    local -a dirs=()
    local list=0 arg
    for arg in "$@"; do
        case $arg in
            -f|--force) FORCE=1 ;;
            --list) list=1 ;;
            -h|--help) usage; return 0 ;;
            -*) die "unknown option $arg (see --help)" ;;
            *) arg=${arg#"$TAG_PREFIX/"}; dirs+=("${arg%":$TAG_VERSION"}") ;;
        esac
    done
    [[ ${#dirs[@]} -gt 0 ]] || mapfile -t dirs < <(all_image_dirs)
    local d
    for d in "${dirs[@]}"; do
        [[ $d =~ ^[a-z0-9]+([._-][a-z0-9]+)*$ ]] || die "invalid image directory name: $d"
        [[ -f $IMAGES_DIR/$d/Dockerfile ]] || die "no such image: $d (expected $IMAGES_DIR/$d/Dockerfile)"
    done
    if [[ $list == 1 ]]; then
        for d in "${dirs[@]}"; do image_tag "$d"; done
        return 0
    fi

    command -v docker >/dev/null || die "docker CLI not found"
    docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"

    # Serialise concurrent runs (e.g. parallel tests) so they don't build twice.
    if command -v flock >/dev/null; then
        exec 9>"${TMPDIR:-/tmp}/cloudrun-emulator-build-images.$(id -u).lock"
        flock 9
    fi

    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cloudrun-emulator-images.XXXXXX")"
    ensure_base
    for d in "${dirs[@]}"; do
        build_image "$(image_tag "$d")" "$d"
    done
}

# Only run when executed, so the functions can be sourced (e.g. for tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
