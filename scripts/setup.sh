#!/usr/bin/env bash
# One-time setup on a fresh Debian/Ubuntu machine (root or sudo): system packages, then the project.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Fashion-MNIST (the offline default data set), the MQTT broker the agent's tests talk to, and
# openssl for the test certificates of its TLS listener.
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq dataset-fashion-mnist mosquitto openssl >/dev/null
# promtool (Debian's prometheus package): the tests lint the agent's /metrics with it, as the
# monitoring side would. Only the tool is wanted: no node exporter, and no server left running.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if [ -d /run/systemd/system ]; then $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
# A real RTSP server for the agent's camera tests and benchmark (GStreamer's, run by the system
# Python's GObject bindings) and ffmpeg to encode footage as cameras send it.
$SUDO apt-get install -y -qq ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad >/dev/null
# Real footage (Megamind.avi, tree.avi, vtest.avi): OpenCV's samples, unpacked without installing.
if [ ! -d /tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data ]; then
  (cd /tmp && apt-get download opencv-doc >/dev/null && dpkg -x opencv-doc_*.deb /tmp/opencv-doc && rm -f opencv-doc_*.deb)
fi
# torch is pinned in pyproject (train extra) so CPU machines take the CPU build.
python3 -m pip install -q --disable-pip-version-check -e ".[train,dev]"
echo "setup done"
