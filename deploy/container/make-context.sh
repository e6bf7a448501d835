#!/usr/bin/env bash
# Make the build context of deploy/container/Dockerfile from binaries built
# outside the image.
#
#   make-context.sh [--release | --debug | --bin-dir DIR] [--base-rootfs DIR] OUT
#
#   --release        cargo build --release -p airlock-executor (the default),
#                    then use target/release
#   --debug          cargo build -p airlock-executor, then use target/debug
#   --bin-dir DIR    use the three binaries already in DIR (no build)
#   --base-rootfs D  also write, into D, a minimal base filesystem made of
#                    the binaries' shared libraries (their `ldd` closure) and
#                    the dynamic loader, for `docker import` where no base
#                    image can be pulled
#
# OUT receives rootfs/ (what the Dockerfile copies to /) and a copy of the
# Dockerfile. Existing OUT/rootfs is replaced.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

mode=release bin_dir="" base_rootfs="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) mode=release ;;
    --debug) mode=debug ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; mode=given; shift ;;
    --base-rootfs) base_rootfs="${2:?--base-rootfs needs a directory}"; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "make-context.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "make-context.sh: one OUT directory only" >&2; exit 2; }; out="$1" ;;
  esac
  shift
done
[ -n "$out" ] || { echo "make-context.sh: name the OUT directory (see --help)" >&2; exit 2; }

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$mode" in
  release) (cd "$repo" && cargo build --release --quiet -p airlock-executor --bins); bin_dir="$target_dir/release" ;;
  debug) (cd "$repo" && cargo build --quiet -p airlock-executor --bins); bin_dir="$target_dir/debug" ;;
esac
bins=(airlock airlock-executor airlock-proposer)
for b in "${bins[@]}"; do
  [ -x "$bin_dir/$b" ] || { echo "make-context.sh: no executable $bin_dir/$b" >&2; exit 1; }
done

mkdir -p "$out"
rm -rf "$out/rootfs"
root="$out/rootfs"
install -d -m 0755 "$root/usr/local/bin" "$root/etc/airlock"
for b in "${bins[@]}"; do install -m 0755 "$bin_dir/$b" "$root/usr/local/bin/$b"; done
# The users the config names: the executor's, a proposer's and an approver's.
# Replace them by mounting your own /etc/passwd and /etc/group if your config
# names others.
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
airlock:x:10001:10001:Airlock executor:/var/lib/airlock:/usr/sbin/nologin
agent:x:10002:10002:Airlock proposer:/nonexistent:/usr/sbin/nologin
approver:x:10003:10003:Airlock approver:/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
airlock:x:10001:agent,approver
agent:x:10002:
approver:x:10003:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"
# Writable only through what `docker run` mounts there (a volume, a tmpfs).
install -d -m 0700 "$root/var/lib/airlock"
install -d -m 0750 "$root/run/airlock"
install -d -m 1777 "$root/tmp"
if [ "$(id -u)" = 0 ]; then
  chown 10001:10001 "$root/var/lib/airlock" "$root/run/airlock"
fi
cp "$here/Dockerfile" "$out/Dockerfile"

if [ -n "$base_rootfs" ]; then
  mkdir -p "$base_rootfs"
  # Every shared library the binaries load, and the loader, at their paths.
  libs=$(for b in "${bins[@]}"; do ldd "$bin_dir/$b"; done \
    | awk '/=> \// { print $3 } /^\s*\/[^ ]+ \(/ { print $1 }' | sort -u)
  for lib in $libs; do
    install -D -m 0755 "$(readlink -f "$lib")" "$base_rootfs$lib"
  done
  install -d -m 0755 "$base_rootfs/etc" "$base_rootfs/usr/sbin" "$base_rootfs/proc" "$base_rootfs/dev" "$base_rootfs/sys"
  install -d -m 1777 "$base_rootfs/tmp"
fi
echo "$out"
