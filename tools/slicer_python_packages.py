"""Re-read the Python packages a Slicer release ships from its SuperBuild, into the list
Testing/module/test_load_chain.py admits on the module's load chain.

    python tools/slicer_python_packages.py --git-dir /path/to/Slicer.git            # write
    python tools/slicer_python_packages.py --git-dir /path/to/Slicer.git --check    # compare

The git directory is a clone (or bare mirror) of github.com/Slicer/Slicer; nothing is
built. Slicer pins each Python package as `name==version --hash=...` inside the
requirements text of `SuperBuild/External_python-*.cmake`; SimpleITK is built from
source, its version in the comment of `External_SimpleITK.cmake`'s GIT_TAG. Each line of
the list is: import name, distribution, version, and the source path:line it came from.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "Testing" / "module" / "slicer_5_10_python_packages.txt"
DEFAULT_TAG = "v5.10.0"
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
SIMPLEITK_TAG = re.compile(r"slicer-v(\d+(?:\.\d+)+)")
# The SuperBuild names distributions; what `import` sees is in each wheel's top_level.txt,
# which is not in Slicer's source. These are the distributions whose import names differ
# from the distribution name (lower case, "-" as "_"), read from their wheels on PyPI.
IMPORT_NAMES = {
    "pillow": ("PIL",), "gitpython": ("git",), "pyjwt": ("jwt",), "pynacl": ("nacl",),
    "python-dateutil": ("dateutil",), "pygithub": ("github",), "cffi": ("cffi", "_cffi_backend"),
    "setuptools": ("setuptools", "pkg_resources", "_distutils_hack"),
    "simpleitk": ("SimpleITK",),
}


def git(git_dir: str, *args: str) -> str:
    """The output of a git command on `git_dir`; a clear error when git fails."""
    result = subprocess.run(["git", "--git-dir", git_dir, *args], capture_output=True,
                            text=True)
    if result.returncode != 0:
        sys.exit(f"{git_dir}: git {' '.join(args)} failed: {result.stderr.strip()}. "
                 "Give --git-dir a clone of github.com/Slicer/Slicer that has the tag.")
    return result.stdout


def source_files(git_dir: str, tag: str) -> list[str]:
    """The SuperBuild files that pin a Python package, in path order."""
    names = git(git_dir, "ls-tree", "--name-only", tag, "SuperBuild/").split()
    return sorted(n for n in names if re.fullmatch(r"SuperBuild/External_python-.*\.cmake", n)
                  or n == "SuperBuild/External_SimpleITK.cmake")


def pins(path: str, text: str) -> list[tuple[str, str, str]]:
    """(distribution, version, path:line) of every package pinned in one file."""
    pattern = SIMPLEITK_TAG if path.endswith("External_SimpleITK.cmake") else REQUIREMENT
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = pattern.search(line)
        if match and pattern is SIMPLEITK_TAG:
            found.append(("SimpleITK", match.group(1), f"{path}:{number}"))
        elif match:
            found.append((match.group(1), match.group(2), f"{path}:{number}"))
    return found


def import_names(distribution: str) -> tuple[str, ...]:
    key = distribution.lower()
    return IMPORT_NAMES.get(key, (key.replace("-", "_").replace(".", "_"),))


def package_lines(git_dir: str, tag: str) -> list[str]:
    """The list's lines: one per import name; a distribution pinned in several files
    (six) is listed once, from the first file."""
    seen, lines = set(), []
    for path in source_files(git_dir, tag):
        for distribution, version, where in pins(path, git(git_dir, "show", f"{tag}:{path}")):
            if distribution.lower() in seen:
                continue
            seen.add(distribution.lower())
            lines += [f"{name} {distribution} {version} {where}"
                      for name in import_names(distribution)]
    return sorted(lines, key=str.lower)


def render(lines: list[str], tag: str) -> str:
    header = [f"# Python packages Slicer {tag} ships (its SuperBuild), one import name a line:",
              "# import-name distribution version source-path:line",
              "# Written by tools/slicer_python_packages.py; do not edit by hand."]
    return "\n".join(header + lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--git-dir", required=True, help="a clone of Slicer/Slicer")
    parser.add_argument("--tag", default=DEFAULT_TAG, help="the release (default %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the list to write")
    parser.add_argument("--check", action="store_true",
                        help="compare with --out instead of writing it; exit 1 if different")
    args = parser.parse_args(argv)
    text = render(package_lines(args.git_dir, args.tag), args.tag)
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs from ' + args.tag}")
        return 0 if same else 1
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(args.out)  # atomic: a reader never sees half a list
    print(f"{args.out}: {text.count(chr(10)) - 3} import names from Slicer {args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
