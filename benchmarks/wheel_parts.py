"""A file too large for one device call, carried in parts: split here, check as parts arrive, join there.

    python3 benchmarks/wheel_parts.py split WHEEL DIR [--part-mib 55]   # DIR/WHEEL.part-001 ... + manifest.json
    python3 benchmarks/wheel_parts.py check DIR                         # the parts here so far, each verified
    python3 benchmarks/wheel_parts.py join DIR OUT_DIR [--sha256 HEX]   # OUT_DIR/WHEEL, every part and the whole verified

The manifest records the file's name, size and sha256 and each part's; `--sha256` also checks the whole
against a hash recorded elsewhere (the package index's), so a manifest made from a wrong file is caught.
A missing or corrupt part ends with one `error:` line and exit code 2. Standard library only: it runs
on the device machine before anything is installed there.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

MANIFEST = "manifest.json"
CHUNK = 1 << 20


class PartError(Exception):
    """A part or the joined file is missing or does not match the manifest."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def split(file: Path, folder: Path, part_bytes: int) -> dict:
    """Cut `file` into parts of at most `part_bytes` in `folder`, with the manifest; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    with file.open("rb") as f:
        while block := f.read(part_bytes):
            part = folder / f"{file.name}.part-{len(parts) + 1:03d}"
            part.write_bytes(block)
            parts.append({"name": part.name, "size": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    manifest = {"name": file.name, "size": file.stat().st_size, "sha256": sha256(file), "parts": parts}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise PartError(f"{folder / MANIFEST} is missing: carry it with the parts") from None
    except json.JSONDecodeError as exc:
        raise PartError(f"{folder / MANIFEST} is not valid JSON: {exc}") from None


def check_part(folder: Path, part: dict) -> None:
    """Raise `PartError` if the part is there but differs from the manifest (size first: it is cheap)."""
    path = folder / part["name"]
    size = path.stat().st_size
    if size != part["size"]:
        raise PartError(f"{path} has {size} bytes, the manifest says {part['size']}: carry it again")
    if sha256(path) != part["sha256"]:
        raise PartError(f"{path} sha256 differs from the manifest: carry it again")


def check(folder: Path) -> tuple[int, list[str]]:
    """Verify every part present; (parts present, names of those still missing)."""
    manifest = load_manifest(folder)
    missing = []
    for part in manifest["parts"]:
        if (folder / part["name"]).is_file():
            check_part(folder, part)
        else:
            missing.append(part["name"])
    return len(manifest["parts"]) - len(missing), missing


def join(folder: Path, out_dir: Path, expected_sha256: str | None = None) -> Path:
    """Join the parts into out_dir/NAME after checking each; the whole is checked too. Returns its path."""
    manifest = load_manifest(folder)
    if expected_sha256 and manifest["sha256"] != expected_sha256.lower():
        raise PartError(f"{folder / MANIFEST} is for sha256 {manifest['sha256'][:12]}..., not the recorded "
                        f"{expected_sha256[:12]}...: split the right file")
    _, missing = check(folder)
    if missing:
        raise PartError(f"{len(missing)} of {len(manifest['parts'])} parts missing in {folder}: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / manifest["name"]
    with out.open("wb") as f:
        for part in manifest["parts"]:
            f.write((folder / part["name"]).read_bytes())
    if out.stat().st_size != manifest["size"] or sha256(out) != manifest["sha256"]:
        out.unlink()
        raise PartError(f"the joined {manifest['name']} differs from the manifest's size or sha256")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("split", help="cut FILE into parts in DIR, with manifest.json")
    p.add_argument("file", type=Path)
    p.add_argument("dir", type=Path)
    p.add_argument("--part-mib", type=float, default=55, help="largest part in MiB (default 55: one per 64 MiB call)")
    p = commands.add_parser("check", help="verify the parts in DIR so far")
    p.add_argument("dir", type=Path)
    p = commands.add_parser("join", help="join DIR's parts into OUT_DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--sha256", help="the whole file's sha256 as recorded elsewhere")
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            m = split(args.file, args.dir, max(1, int(args.part_mib * CHUNK)))
            print(f"{m['name']}: {m['size']} bytes, sha256 {m['sha256']}, {len(m['parts'])} parts in {args.dir}")
        elif args.command == "check":
            here, missing = check(args.dir)
            print(f"{here} of {here + len(missing)} parts here and intact" + (f"; missing: {', '.join(missing)}"
                                                                              if missing else "; all here"))
        else:
            print(join(args.dir, args.out_dir, args.sha256))
    except (PartError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
