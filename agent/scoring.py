"""Scoring a replay of labelled footage: how well the deployed threshold separates known frames.

An operator validating a deployment replays a recording whose adversarial frames are known
(`labels.json`, e.g. from `trainer demo-stream`) and gets detection and false-alarm rates.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import AgentError


@dataclass
class LabelledScore:
    """Per-frame and per-alert counts against a set of adversarial frame indices."""

    adversarial: frozenset[int]
    hits: int = 0  # adversarial frames over the threshold
    positives: int = 0
    false_frames: int = 0  # clean frames over the threshold
    negatives: int = 0
    true_alerts: int = 0
    false_alerts: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> "LabelledScore":
        """Read `{"adversarial": [frame indices, ...]}` from a JSON file."""
        try:
            indices = json.loads(Path(path).read_text())["adversarial"]
            return cls(frozenset(int(i) for i in indices))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AgentError(f"labels file {path}: expected JSON with an 'adversarial' list of frame indices ({exc})") from None

    def frame(self, index: int, over: bool) -> None:
        """Count one processed frame and whether p_adv exceeded the threshold."""
        if index in self.adversarial:
            self.positives += 1
            self.hits += over
        else:
            self.negatives += 1
            self.false_frames += over

    def alert(self, index: int) -> None:
        """Count an alert raised at frame `index`."""
        if index in self.adversarial:
            self.true_alerts += 1
        else:
            self.false_alerts.append(index)

    def lines(self) -> list[str]:
        """The closing summary, one fact per line."""
        rate = lambda a, b: f"{a}/{b} = {a / b:.1%}" if b else "n/a"  # noqa: E731
        return [
            f"detection rate on adversarial frames: {rate(self.hits, self.positives)}",
            f"false alarms on clean frames:         {rate(self.false_frames, self.negatives)}",
            f"alerts on adversarial frames: {self.true_alerts}, elsewhere: {len(self.false_alerts)}"
            + (f" (frames {self.false_alerts[:10]})" if self.false_alerts else ""),
        ]
