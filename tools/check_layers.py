"""Check a checkout's pipeline against the floors its own docs/ARCHITECTURE.md lists.

    python tools/check_layers.py [--root DIR]

The floors are read from DIR/docs/ARCHITECTURE.md: the numbered list under "## Floors"
(this layout), or, in a checkout from before the sub-packages (issue 21), the module table
under "## Modules (ground floor first)", one floor per row. import-linter's `layers`
contract is then run over DIR's `uncertaintyseg` (lazy imports inside functions count).
Prints the upward imports and the package's modules on no floor; exit 1 if there are any.
The imports the checkout's pyproject.toml accepts (`ignore_imports` of its layers
contract, each with its reason there) are not counted.
The repository's own contract is in pyproject.toml (Testing/pipeline/test_layering.py runs
it); this tool is for any checkout, e.g. an old commit extracted with `git archive`.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "uncertaintyseg"
SHARED = "uncertaintyseg_shared"
NAME = re.compile(r"`([A-Za-z_][\w./]*)`")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # import-linter colours its report even into a pipe


def _section(text: str, title: str) -> list[str]:
    """The lines of the `## title...` section (up to the next `## `)."""
    lines, inside = [], False
    for line in text.split("\n"):
        if line.startswith("## "):
            inside = line[3:].startswith(title)
        elif inside:
            lines.append(line)
    return lines


def floors_from_doc(text: str) -> list[list[str]]:
    """Floors, ground first, each a list of names relative to the package (or SHARED)."""
    floors = [NAME.findall(line.split(" - ")[0].split(" — ")[0])
              for line in _section(text, "Floors") if re.match(r"\d+\. ", line)]
    if not floors:  # before issue 21: the module table, one floor per row
        floors = [NAME.findall(line.split("|")[1])
                  for line in _section(text, "Modules (ground floor first)")
                  if line.startswith("| `")]
    return [[name.rstrip("/") for name in floor] for floor in floors if floor]


def _module_names(source: Path) -> set[str]:
    """The package's top-level modules and sub-packages, by name."""
    return {p.stem for p in (source / PACKAGE).glob("*.py")} | {
        p.parent.name for p in (source / PACKAGE).glob("*/__init__.py")}


def known_ignores(root: Path) -> list[str]:
    """The floors contract's `ignore_imports` of root/pyproject.toml (the upward imports
    the repository accepts, each with its reason there); [] for a checkout without."""
    import tomllib

    try:
        config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    contracts = config.get("tool", {}).get("importlinter", {}).get("contracts", [])
    return [line for c in contracts if c.get("type") == "layers"
            for line in c.get("ignore_imports", [])]


def _config(floors: list[list[str]], present: set[str], ignores=()) -> str:
    def full(name: str) -> str:
        return name if name == SHARED else f"{PACKAGE}.{name}"

    layers = []
    for floor in reversed(floors):  # import-linter lists the top first
        names = [full(n) for n in floor if n in present or n == SHARED]
        if names:
            layers.append(" : ".join(names))  # siblings on one floor may import each other
    roots = [PACKAGE] + ([SHARED] if any(SHARED in floor for floor in floors) else [])
    return ("[importlinter]\nroot_packages =\n" + "".join(f"    {r}\n" for r in roots)
            + "\n[importlinter:contract:floors]\nname = floors of docs/ARCHITECTURE.md\n"
            "type = layers\nlayers =\n" + "".join(f"    {layer}\n" for layer in layers)
            + ("ignore_imports =\n" + "".join(f"    {i}\n" for i in ignores) if ignores else ""))


def check(root: Path) -> tuple[int, str, list[str]]:
    """(import-linter's exit code, its report, the package's modules on no floor)."""
    doc = root / "docs" / "ARCHITECTURE.md"
    source = root / "UncertaintySeg"
    if not doc.is_file() or not (source / PACKAGE).is_dir():
        raise SystemExit(f"check_layers.py: --root {root}: needs docs/ARCHITECTURE.md and "
                         f"UncertaintySeg/{PACKAGE} (a checkout's root)")
    floors = floors_from_doc(doc.read_text(encoding="utf-8"))
    if not floors:
        raise SystemExit(f"check_layers.py: {doc}: no '## Floors' list nor module table")
    present = _module_names(source)
    placed = {name for floor in floors for name in floor}
    unplaced = sorted(present - placed - {"__init__", "__main__", "_moved", "_moved_table"})
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "floors.ini"
        config.write_text(_config(floors, present, known_ignores(root)), encoding="utf-8")
        code, report = run_contracts(config, source)
    return code, report, unplaced


def run_contracts(config: Path, source: Path) -> tuple[int, str]:
    """import-linter's contracts of `config` over the packages in `source` (a folder that
    holds uncertaintyseg): (exit code, report)."""
    # A fresh interpreter whose path starts at `source`: grimp reads those files, not those
    # of whatever uncertaintyseg is installed. Run in the config's folder, without a cache.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(source), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True))")
    run = subprocess.run([sys.executable, "-c", code], cwd=config.parent, env=env,
                         capture_output=True, text=True)
    return run.returncode, ANSI.sub("", run.stdout + run.stderr)


def upward_imports(report: str) -> int:
    """Import statements import-linter reports as broken (one per line number)."""
    return sum(len(re.findall(r"l\.\d+", line)) for line in report.split("\n")
               if line.lstrip().startswith("- ") and " -> " in line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="a checkout's root (default: this one)")
    args = parser.parse_args(argv)
    code, report, unplaced = check(args.root)
    print(report)
    print(f"{upward_imports(report)} upward import statements")
    if unplaced:
        print(f"{len(unplaced)} modules on no floor: {', '.join(unplaced)}")
    return 1 if code or unplaced else 0


if __name__ == "__main__":
    sys.exit(main())
