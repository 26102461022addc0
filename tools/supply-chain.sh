#!/usr/bin/env bash
# Supply chain (part of `make test`): cargo deny (advisories, licenses, bans, sources) and
# cargo audit. Both tools are installed from crates.io (pinned, --locked) into a cache outside
# the checkout. Advisories come from the offline RustSec snapshot beside the checkout
# (../shared/rustsec-advisory-db) when there is one, else from the live database (what the tools
# would download anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="${ORKV_TOOLS_DIR:-$HOME/.cache/orkv-tools}"
export PATH="$tools/bin:$PATH"
DENY_VERSION=0.20.2
AUDIT_VERSION=0.22.2

install() { # crate version binary
  if ! "$tools/bin/$3" --version 2>/dev/null | grep -q " $2"; then
    echo "==> installing $1 $2 from crates.io into $tools"
    cargo install --quiet --locked --root "$tools" "$1@$2"
  fi
}
install cargo-deny "$DENY_VERSION" cargo-deny
install cargo-audit "$AUDIT_VERSION" cargo-audit

# The snapshot: named explicitly, beside this checkout, or beside the repository this one was
# cloned from (a CI clone of a local checkout).
snapshot=
origin=$(git config --get remote.origin.url 2>/dev/null || true)
for candidate in "${ORKV_ADVISORY_SNAPSHOT:-}" "$root/../shared/rustsec-advisory-db" \
  ${origin:+"$origin/../shared/rustsec-advisory-db"}; do
  if [ -n "$candidate" ] && [ -f "$candidate/SNAPSHOT.txt" ]; then snapshot=$candidate; break; fi
done
db_root="${ORKV_ADVISORY_DB_ROOT:-$HOME/.cache/orkv-advisory-dbs}"
export ORKV_ADVISORY_DB_ROOT="$db_root"
db="$db_root/advisory-db-3157b0e258782691"
offline=()
audit_db=()
if [ -z "$snapshot" ] && [ -f "$db/.orkv-snapshot" ]; then
  # No snapshot here, but the cache holds one made from it earlier: stay offline with it.
  offline=(--offline)
  audit_db=(--db "$db" --no-fetch)
  echo "==> advisories: cached offline snapshot ($(head -c 100 "$db/.orkv-snapshot")…)"
elif [ -n "$snapshot" ]; then
  # The tools open the database as a git repository: make one from the snapshot (once per
  # snapshot), where cargo-deny looks for the RustSec database under db-path.
  stamp="$db/.orkv-snapshot"
  if ! cmp -s "$snapshot/SNAPSHOT.txt" "$stamp" 2>/dev/null; then
    rm -rf "$db"
    mkdir -p "$db"
    cp -r "$snapshot/." "$db/"
    (cd "$db" && rm -rf .git && git init -q && git add -A && git -c user.name=orkv -c user.email=orkv@localhost commit -qm snapshot)
    cp "$snapshot/SNAPSHOT.txt" "$stamp"
  fi
  offline=(--offline)
  audit_db=(--db "$db" --no-fetch)
  echo "==> advisories: offline snapshot ($(head -c 120 "$snapshot/SNAPSHOT.txt" | tr '\n' ' ')…)"
fi

echo "==> cargo deny check"
cargo fetch --quiet # every platform's crates, so the offline graph is complete
cargo deny --log-level warn "${offline[@]}" check advisories bans licenses sources
echo "==> cargo audit"
cargo audit "${audit_db[@]}" --deny warnings 2>&1 | sed "s/^ */    /"
echo "    cargo audit: 0 vulnerabilities, 0 warnings (denied)"
echo "==> legacy stack: no rustls 0.21 / hyper 0.14 in the graph"
if cargo tree --workspace -e normal,build,dev --prefix none | grep -E '^(rustls v0\.2[01]|hyper v0\.|h2 v0\.3|http v0\.)' ; then
  echo "legacy crate found" >&2; exit 1
fi
echo "supply chain clean"
