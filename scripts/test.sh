#!/usr/bin/env bash
# The test command: installs what the tests need (apt + pip), then ruff, mypy --strict, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install
python3 -m ruff check .
python3 -m mypy kdns plugins
python3 -m pytest -q -p no:randomly "$@"
