#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the bench's peers from Debian packages: PyTorch (Gloo backend) for the system python,
# Open MPI with its compiler wrapper, and matplotlib-free tooling (the plot is drawn by vega).
# Needs root (or sudo) and the Debian archive; `npm run bench:setup` runs it.
set -eu
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  python3-torch openmpi-bin libopenmpi-dev
echo "bench:setup: installed python3-torch (Gloo), openmpi-bin and libopenmpi-dev"
