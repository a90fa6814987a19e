#!/usr/bin/env bash
# Installs TensorBoard from PyPI into a venv of its own in the dependency cache, for the test that
# reads dsrun's event files with TensorBoard's own reader (EventAccumulator); dsrun itself needs
# no Python. Prints the venv's python; a no-op when it is already there. Set DSC_DEPS_DIR to move
# the cache (default ~/.cache/dscompile).
#
#   scripts/install-tensorboard.sh     # prints e.g. ~/.cache/dscompile/tensorboard-2.21.0/bin/python
set -euo pipefail

TENSORBOARD_VERSION=2.21.0

deps="${DSC_DEPS_DIR:-$HOME/.cache/dscompile}"
venv="$deps/tensorboard-$TENSORBOARD_VERSION"
stamp="$venv/.installed"
if [ -f "$stamp" ]; then
  echo "$venv/bin/python"
  exit 0
fi

log() { echo "install-tensorboard: $*" >&2; }
rm -rf "$venv"
log "creating $venv with tensorboard $TENSORBOARD_VERSION from PyPI"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "tensorboard==$TENSORBOARD_VERSION" >&2
"$venv/bin/python" -c "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator" >&2
touch "$stamp"
echo "$venv/bin/python"
