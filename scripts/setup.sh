#!/usr/bin/env bash
# One-time setup on a fresh Debian/Ubuntu machine (root or sudo): system packages, then the project.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Fashion-MNIST (the offline default data set) and the MQTT broker the agent's tests talk to.
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq dataset-fashion-mnist mosquitto >/dev/null
# torch is pinned in pyproject (train extra) so CPU machines take the CPU build.
python3 -m pip install -q --disable-pip-version-check -e ".[train,dev]"
echo "setup done"
