#!/usr/bin/env bash
# Regenerate migrations/versions/0001 from the models while no release has shipped it.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
export DATABASE_URL="sqlite:///$tmp/regen.db"
rm -f migrations/versions/0001_*.py
.venv/bin/flask --app app db migrate -m "Create the Likeness schema" --rev-id 0001 >/dev/null
rm -rf "$tmp"
echo "regenerated: $(ls migrations/versions/0001_*.py)"
