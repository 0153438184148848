#!/usr/bin/env bash
# Converge benchmark (issue 13): cold, no-op and release-deploy runs of the collection's playbooks
# on the single box and the three-tier layout, optionally over SSH. Not part of the test suite.
#   scripts/bench_converge.sh [--layouts single,three] [--runs 3] [--ssh] [--keep] [--controller-nice N] [--timeline]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
PYDEPLOY_DEBIAN_RELEASES=${PYDEPLOY_DEBIAN:-12} scripts/prepare.sh
# shellcheck disable=SC1091
source "$PYDEPLOY_VENV/bin/activate"
exec python3 scripts/bench_converge.py "$@"
