"""Real footage served over real RTSP, for tests and benchmarks.

`footage` finds the OpenCV sample videos (Debian's opencv-doc, unpacked by scripts/setup.sh),
`encode` turns a clip into the H.264 a camera sends (ffmpeg), and `RtspServer` runs
rtsp_server.py (GStreamer's RTSP server) on 127.0.0.1 so a test can stop, restart and stall it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

FOOTAGE_DIRS = [Path(os.environ.get("OPENCV_SAMPLES", "/nonexistent")),
                Path("/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data"),
                Path("/usr/share/doc/opencv-doc/examples/data")]
SYSTEM_PYTHON = "/usr/bin/python3"  # has Debian's GObject bindings, which a virtualenv lacks
SERVER = Path(__file__).with_name("rtsp_server.py")


def footage(name: str) -> Path | None:
    """Path of an OpenCV sample video such as Megamind.avi, or None where it is not installed."""
    return next((d / name for d in FOOTAGE_DIRS if (d / name).is_file()), None)


def missing() -> str | None:
    """Why RTSP tests cannot run here (a reason to skip), or None."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return "GStreamer RTSP server (gir1.2-gst-rtsp-server-1.0) is not installed" if probe.returncode else None


def encode(source: Path, out: Path, width: int, height: int, fps: float = 25.0, loops: int = 1) -> Path:
    """`source` as a camera would send it: H.264 (one key frame a second) at width x height, fps, in Matroska."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(source), "-an",
                    "-vf", f"scale={width}:{height},fps={fps}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-tune", "zerolatency", "-g", str(round(fps)), "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


class RtspServer:
    """rtsp_server.py on 127.0.0.1:port serving `mounts` (name -> .mkv); stop, start and stall it at will."""

    def __init__(self, port: int, mounts: dict[str, Path]) -> None:
        self.port = port
        self.mounts = dict(mounts)
        self.proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        """Start and wait for its "ready" line (it listens from then on)."""
        args = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port)]
        for name, path in self.mounts.items():
            args += ["--mount", f"{name}={path}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # blocks until ready, or "" when it died
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def stop(self) -> None:
        """Terminate it: every client connection closes."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)  # a stalled server must be able to exit
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def stall(self, stalled: bool = True) -> None:
        """Freeze (SIGSTOP) or thaw (SIGCONT) it: connections stay open but no byte moves."""
        self.proc.send_signal(signal.SIGSTOP if stalled else signal.SIGCONT)
