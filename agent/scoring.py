"""Scoring a replay of labelled footage: how well the deployed threshold separates known frames.

An operator validating a deployment replays a recording whose adversarial frames are known
(`labels.json`, e.g. from `trainer demo-stream`) and gets detection and false-alarm rates, and,
when the labels name the kind of each burst (`kinds`: kind -> frame indices), the detection
rate and the bursts alerted on per kind. When they also give each frame's true class
(`classes`), the summary ends with each kind's silent misclassifications: adversarial frames
that fooled the classifier (argmax of `probs` is not the true class) and were not flagged
(p_adv not over the threshold, the same test as the detection rate).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import AgentError
from agent.observers import Observer, Scored


@dataclass
class LabelledScore(Observer):
    """Per-frame and per-alert counts against a set of adversarial frame indices; observes one camera."""

    adversarial: frozenset[int]
    kinds: dict[str, frozenset[int]] = field(default_factory=dict)  # burst kind -> its adversarial frames
    classes: tuple[int, ...] | None = None  # true class of each frame, by frame index
    hits: int = 0  # adversarial frames over the threshold
    positives: int = 0
    false_frames: int = 0  # clean frames over the threshold
    negatives: int = 0
    true_alerts: int = 0
    false_alerts: list[int] = field(default_factory=list)
    hit_frames: set[int] = field(default_factory=set)  # per-kind rates are counted from these at the end
    seen_frames: set[int] = field(default_factory=set)
    alert_frames: set[int] = field(default_factory=set)
    fooled_frames: set[int] = field(default_factory=set)  # judged adversarial frames the classifier got wrong
    unfamiliar_frames: set[int] = field(default_factory=set)  # adversarial frames not judged: unlike the training data

    @classmethod
    def load(cls, path: str | Path) -> "LabelledScore":
        """Read `{"adversarial": [frame indices, ...]}` from a JSON file, with optional
        `"kinds": {kind: [frame indices, ...]}` and `"classes": [true class of frame 0, 1, ...]`."""
        try:
            labels = json.loads(Path(path).read_text())
            kinds = {str(k): frozenset(int(i) for i in v) for k, v in labels.get("kinds", {}).items()}
            classes = tuple(int(c) for c in labels["classes"]) if "classes" in labels else None
            return cls(frozenset(int(i) for i in labels["adversarial"]), kinds, classes)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AgentError(f"labels file {path}: expected JSON with an 'adversarial' list of frame indices ({exc})") from None

    def on_frame(self, scored: Scored) -> None:
        """Count a judged frame, or one not judged because it is unfamiliar."""
        if scored.judged:
            self.frame(scored.frame.index, scored.over, scored.predicted)
        else:
            self.unfamiliar(scored.frame.index)

    def on_event(self, event: dict) -> None:
        """Count an alert."""
        if event["event"] == "alert":
            self.alert(event["frame_index"])

    def frame(self, index: int, over: bool, predicted: int | None = None) -> None:
        """Count one judged frame, whether p_adv exceeded the threshold and the class the model predicted."""
        if index in self.adversarial:
            self.positives += 1
            self.hits += over
            self.seen_frames.add(index)
            if over:
                self.hit_frames.add(index)
            if self.classes is not None and index < len(self.classes) and predicted != self.classes[index]:
                self.fooled_frames.add(index)
        else:
            self.negatives += 1
            self.false_frames += over

    def unfamiliar(self, index: int) -> None:
        """Count a frame that was not judged because it is unlike the training data."""
        if index in self.adversarial:
            self.unfamiliar_frames.add(index)

    def alert(self, index: int) -> None:
        """Count an alert raised at frame `index`."""
        if index in self.adversarial:
            self.true_alerts += 1
            self.alert_frames.add(index)
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
            *[self._kind_line(kind, frames, rate) for kind, frames in self.kinds.items()],
            *([self._silent_line(kind) for kind in self.kinds] if self.classes is not None else []),
        ]

    def silent(self, kind: str) -> dict[str, int]:
        """One kind's judged adversarial frames, those that fooled the classifier, how many of those were
        flagged, the rest (silent misclassifications), and the kind's frames not judged (unfamiliar)."""
        frames = self.kinds[kind]
        fooled = frames & self.fooled_frames
        flagged = len(fooled & self.hit_frames)
        return {"frames": len(frames & self.seen_frames), "fooled": len(fooled), "flagged": flagged,
                "silent": len(fooled) - flagged, "unfamiliar": len(frames & self.unfamiliar_frames)}

    def _silent_line(self, kind: str) -> str:
        c = self.silent(kind)
        return (f"{kind}: {c['frames']} frames, {c['fooled']} fooled the classifier, {c['flagged']} of them flagged, "
                f"{c['silent']} silent misclassifications"
                + (f" ({c['unfamiliar']} more frames unfamiliar: not judged)" if c["unfamiliar"] else ""))

    def _kind_line(self, kind: str, frames: frozenset[int], rate) -> str:
        """Detection rate on one kind's judged frames and how many of its bursts (runs of consecutive labelled
        frames) raised an alert. A burst is the labels' run, not the judged frames': an unfamiliar frame inside
        it would otherwise split it in two, and a burst never judged would not be counted as missed."""
        seen = frames & self.seen_frames
        bursts = _runs(sorted(frames))
        alerted = sum(1 for b in bursts if self.alert_frames & b)
        return (f"{kind} bursts: detection {rate(len(frames & self.hit_frames), len(seen))}, "
                f"alerted on {alerted}/{len(bursts)} bursts")


def _runs(indices: list[int]) -> list[set[int]]:
    """Consecutive runs of sorted frame indices, e.g. [3, 4, 9] -> [{3, 4}, {9}]."""
    runs: list[set[int]] = []
    for i in indices:
        if runs and i - 1 in runs[-1]:
            runs[-1].add(i)
        else:
            runs.append({i})
    return runs
