"""A real RTSP server for tests and benchmarks: GStreamer's gst-rtsp-server on 127.0.0.1.

Serves H.264 Matroska files as recorded (no re-encoding, so eight streams cost the server
next to nothing), paced in real time by their timestamps, each client from the start of
its file. Run it with the system Python, which has the GObject bindings (Debian:
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-bad):

    /usr/bin/python3 tests/agent/rtsp_server.py --port 8554 --mount cam0=front.mkv --mount cam1=rear.mkv

It prints "ready" on stdout once it accepts connections; SIGTERM ends it.
"""
from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", required=True, metavar="NAME=FILE.mkv",
                        help="serve FILE.mkv (H.264) at rtsp://127.0.0.1:PORT/NAME (repeatable)")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for entry in args.mount:
        name, path = entry.split("=", 1)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f'( filesrc location="{path}" ! matroskademux ! h264parse '
                           f'! rtph264pay name=pay0 pt=96 config-interval=-1 )')
        factory.set_shared(False)  # every client gets the stream from its start
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
