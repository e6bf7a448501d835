#!/usr/bin/env bash
# Mutation testing of the two crates a security reviewer reads first:
# `policy` (airlock-policy) and `ipc-protocol` (airlock-ipc), each measured
# with ITS OWN tests only, so every decision is pinned where it is defined.
#
#   bash tests/mutants.sh           every mutant of both crates, in place, one
#                                   crate at a time (~1 h on 2 cores); prints
#                                   the two rates; fails below 95% or on a
#                                   survivor docs/assurance.md does not explain
#   bash tests/mutants.sh --record  the same, then writes HEAD to
#                                   tests/mutants-base (the tree last measured)
#   bash tests/mutants.sh policy    one crate only (policy or ipc-protocol)
#   bash tests/mutants.sh --diff    only the mutants on lines of policy/src and
#                                   ipc-protocol/src changed since
#                                   tests/mutants-base; fails on any survivor
#                                   docs/assurance.md does not explain. The
#                                   README test command runs this.
#
# "In place" means cargo-mutants edits the source file under test and puts it
# back after each mutant (it reuses target/, so a mutant costs an
# incremental build). Do not edit the crates while it runs.
#
# A survivor is explained when docs/assurance.md lists its name, without the
# :line:column, as "- `<name>` — <why no test can tell>" (the form
# `cargo mutants` prints: "policy/src/x.rs: replace f -> bool with true").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

THRESHOLD=95
CARGO_MUTANTS_VERSION=27.1.0
OUT=target/mutation
CRATES=(airlock-policy:policy airlock-ipc:ipc-protocol)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'tests/mutants.sh: %s\n' "$*" >&2; exit 1; }

mode=full
selected=()
for arg in "$@"; do
  case "$arg" in
    --record) mode=record ;;
    --diff) mode=diff ;;
    policy) selected+=(airlock-policy:policy) ;;
    ipc-protocol) selected+=(airlock-ipc:ipc-protocol) ;;
    *) die "unknown argument \`$arg\`; use --record, --diff, policy or ipc-protocol" ;;
  esac
done
if [ "${#selected[@]}" -gt 0 ]; then
  [ "$mode" = record ] && die "--record measures both crates; give no crate names with it"
  CRATES=("${selected[@]}")
fi

ensure_cargo_mutants() {
  if cargo mutants --version >/dev/null 2>&1; then return; fi
  log "installing cargo-mutants $CARGO_MUTANTS_VERSION from crates.io"
  cargo install cargo-mutants --version "$CARGO_MUTANTS_VERSION" --locked --quiet
}

# "path:line:col: what" -> "path: what"
strip_position() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }

explained() {
  grep -E '^- `[^`]+`' docs/assurance.md | sed -E 's/^- `([^`]+)`.*/\1/' | sort -u
}

count() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }

failed=0
summary=()

# measure PACKAGE DIR [DIFF_FILE]
measure() {
  local package=$1 dir=$2 diff=${3:-}
  local out="$OUT/$dir"
  rm -rf "$out"
  mkdir -p "$out"
  local args=(mutants --in-place --no-shuffle --profile mutants -p "$package" -o "$out")
  [ -n "$diff" ] && args+=(--in-diff "$diff")
  log "cargo ${args[*]}"
  local status=0
  cargo "${args[@]}" >"$out/cargo-mutants.log" 2>&1 || status=$?
  # 0: all caught; 2: some missed; 3: some timed out. Anything else means the
  # measurement itself failed (the crate's own tests fail unmutated, say).
  case $status in
    0 | 2 | 3) ;;
    *) tail -n 30 "$out/cargo-mutants.log" >&2; die "cargo mutants failed on $package (exit $status); see $out/cargo-mutants.log" ;;
  esac
  local results="$out/mutants.out"
  local caught missed timeout unviable viable
  caught=$(count "$results/caught.txt")
  missed=$(count "$results/missed.txt")
  timeout=$(count "$results/timeout.txt")
  unviable=$(count "$results/unviable.txt")
  viable=$((caught + missed + timeout))
  local unexplained=""
  if [ "$missed" -gt 0 ]; then
    unexplained=$(strip_position <"$results/missed.txt" | sort -u | comm -23 - <(explained))
  fi
  local line
  if [ "$viable" -eq 0 ]; then
    line="$package: no viable mutants in scope ($unviable unviable)"
  else
    # A timeout is a detection: the mutant made the tests hang.
    local rate
    rate=$(awk -v c=$((caught + timeout)) -v v="$viable" 'BEGIN { printf "%.1f", 100 * c / v }')
    line="$package: $((caught + timeout)) of $viable viable mutants caught ($rate%; $timeout by timeout), $missed survived, $unviable unviable"
    if [ "$mode" != diff ] && awk -v r="$rate" -v t="$THRESHOLD" 'BEGIN { exit !(r < t) }'; then
      line="$line -- BELOW $THRESHOLD%"
      failed=1
    fi
  fi
  if [ -n "$unexplained" ]; then
    line="$line -- survivors not explained in docs/assurance.md:"$'\n'"$(sed 's/^/    /' <<<"$unexplained")"
    failed=1
  fi
  summary+=("$line")
}

ensure_cargo_mutants

if [ "$mode" = diff ]; then
  [ -f tests/mutants-base ] || die "tests/mutants-base is missing; run bash tests/mutants.sh --record once"
  base=$(tr -d '[:space:]' <tests/mutants-base)
  git cat-file -e "$base^{commit}" 2>/dev/null ||
    die "the measured commit $base (tests/mutants-base) is not in this clone; fetch the full history"
  mkdir -p "$OUT"
  for entry in "${CRATES[@]}"; do
    package=${entry%%:*}
    dir=${entry#*:}
    diff_file="$OUT/$dir.diff"
    git diff "$base" -- "$dir/src" >"$diff_file"
    # New files not yet added to git are part of the change too.
    git ls-files --others --exclude-standard -- "$dir/src" | while read -r new_file; do
      git diff --no-index -- /dev/null "$new_file" || true
    done >>"$diff_file"
    if [ ! -s "$diff_file" ]; then
      summary+=("$package: $dir/src unchanged since $base (tests/mutants-base)")
      continue
    fi
    measure "$package" "$dir" "$diff_file"
  done
else
  for entry in "${CRATES[@]}"; do
    measure "${entry%%:*}" "${entry#*:}"
  done
fi

printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  die "mutation testing failed: add tests that catch the survivors above (or, only for a mutant no test can tell apart, explain it in docs/assurance.md)"
fi
if [ "$mode" = record ]; then
  git diff --quiet HEAD -- policy ipc-protocol ||
    die "policy/ or ipc-protocol/ has uncommitted changes; commit them and measure again before recording"
  git rev-parse HEAD >tests/mutants-base
  log "recorded $(cat tests/mutants-base) in tests/mutants-base"
fi
