"""Proof that the Slicer tiers catch mistakes: inject each mistake of
tools/slicer_mutations.py, one at a time, into a temporary copy of the module, run the
tiers there, and report what was caught and what was missed.

    python tools/mutate_slicer.py [--only M1,C1] [--static-only]

The static tier (all of Testing/module, whatever it holds, e.g. a load-chain test) runs
first; when it passes, the fast MRML scene tests (MRML_TESTS, slicer-core) run too.
A mistake is caught when a tier fails; a control (a valid change) must pass both.
Exits 1 when fewer than 90 % of the mistakes are caught or a control fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from slicer_mutations import MUTATIONS, Mutation  # noqa: E402

# Without the tier's self-tests (marked rule_self_test): they edit the module at their own
# anchors to show that a rule fires, and a mutation may move those anchors.
STATIC_TIER = ["Testing/module", "--ignore=Testing/module/test_mutations.py",
               "-m", "not rule_self_test"]
# The MRML tests of the Lib files the mutations touch (scene, export, review, bundle).
MRML_TESTS = ["Testing/mrml/test_scene.py", "Testing/mrml/test_export.py",
              "Testing/mrml/test_review.py", "Testing/mrml/test_bundle.py"]
REQUIRED_RATE = 0.9


@dataclass
class Outcome:
    mutation: Mutation
    failed_tier: str | None  # "static", "mrml" or None (both passed)
    detail: str

    @property
    def ok(self) -> bool:
        return (self.failed_tier is None) if self.mutation.control else self.failed_tier is not None


def mutated_texts(mutation: Mutation, root: Path = ROOT) -> dict[str, str]:
    """The changed files' texts; AssertionError "anchor not found" when an anchor does
    not occur exactly once (the code moved: update slicer_mutations.py)."""
    texts: dict[str, str] = {}
    for file, old, new in mutation.edits:
        text = texts.get(file) or (root / file).read_text(encoding="utf-8")
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"{mutation.ident}: anchor not found once in {file} "
                                 f"({count} times): {old!r}")
        texts[file] = text.replace(old, new)
    return texts


def _pytest(copy: Path, args: list[str]) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONPATH=str(copy / "UncertaintySeg"), OMP_NUM_THREADS="1",
               nnUNet_n_proc_DA="2")
    result = subprocess.run([sys.executable, "-m", "pytest", *args, "-x", "-q",
                             "-p", "no:cacheprovider"], cwd=copy, env=env,
                            capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return result.returncode == 0, (lines[0] if lines else result.stdout.strip()[-200:])


def run_one(mutation: Mutation, copy: Path, static_only: bool = False) -> Outcome:
    originals = {file: (copy / file).read_text(encoding="utf-8") for file, _, _ in mutation.edits}
    try:
        for file, text in mutated_texts(mutation, copy).items():
            (copy / file).write_text(text, encoding="utf-8")
        passed, detail = _pytest(copy, STATIC_TIER)
        if not passed:
            return Outcome(mutation, "static", detail)
        if static_only:
            return Outcome(mutation, None, "")
        passed, detail = _pytest(copy, MRML_TESTS)
        return Outcome(mutation, None if passed else "mrml", "" if passed else detail)
    finally:
        for file, text in originals.items():
            (copy / file).write_text(text, encoding="utf-8")


def temporary_copy(folder: Path) -> Path:
    """The working tree without git (tests read README, docs, CMakeLists too); the
    tests that need the history skip there."""
    copy = folder / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.pyc", ".pytest_cache", ".venv"))
    return copy


def run(idents=None, static_only=False, report=print) -> list[Outcome]:
    chosen = [m for m in MUTATIONS if idents is None or m.ident in idents]
    for mutation in chosen:  # every anchor first: fail before minutes of runs
        mutated_texts(mutation)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="mutate_slicer_") as folder:
        copy = temporary_copy(Path(folder))
        passed, detail = _pytest(copy, STATIC_TIER)
        if not passed:
            raise SystemExit(f"the unchanged module fails the static tier: {detail}")
        for mutation in chosen:
            outcome = run_one(mutation, copy, static_only)
            outcomes.append(outcome)
            verdict = {(False, True): "caught", (False, False): "MISSED",
                       (True, True): "control passes", (True, False): "FALSE POSITIVE"}[
                (mutation.control, outcome.ok)]
            report(f"{mutation.ident:5} {verdict:15} {outcome.failed_tier or '-':6} "
                   f"{mutation.kind}  {outcome.detail[:110]}")
    return outcomes


def summary(outcomes: list[Outcome]) -> tuple[str, bool]:
    mistakes = [o for o in outcomes if not o.mutation.control]
    controls = [o for o in outcomes if o.mutation.control]
    caught = sum(o.ok for o in mistakes)
    rate = caught / len(mistakes) if mistakes else 1.0
    missed = [f"{o.mutation.ident} ({o.mutation.kind})" for o in mistakes if not o.ok]
    wrong = [o.mutation.ident for o in controls if not o.ok]
    text = (f"caught {caught} of {len(mistakes)} mistakes ({rate:.0%}); controls passing: "
            f"{len(controls) - len(wrong)} of {len(controls)}\nmissed: {', '.join(missed) or 'none'}"
            f"\nfalse positives: {', '.join(wrong) or 'none'}")
    return text, rate >= REQUIRED_RATE and not wrong


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutation ids (default: all)")
    parser.add_argument("--static-only", action="store_true",
                        help="run only Testing/module (not the MRML scene tests)")
    args = parser.parse_args(argv)
    idents = set(args.only.split(",")) if args.only else None
    text, ok = summary(run(idents, args.static_only))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
