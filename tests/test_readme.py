"""The README is what a new clinic's IT person reads first: every file it points to is in
the repository (not in a teammate's checkout beside it), and every command it names exists."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _tracked_roots() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line.split("/")[0] for line in out.splitlines()}


def _references() -> set[str]:
    """Paths in the README that start at a tracked top-level entry (`archive/...`,
    `scripts/run_embedded.sh`, `Makefile`), with any `:line` or `::test` suffix cut."""
    roots = _tracked_roots() - {".gitignore"}
    found = set()
    for token in re.findall(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+)", README):
        token = token.rstrip(".")
        if token.split("/")[0] in roots and ("/" in token or token in roots):
            found.add(token)
    return found


def test_readme_references_files_that_exist():
    references = _references()
    assert len(references) > 20  # the check reads the README at all
    # What `make bench` writes is ignored by git, not missing.
    generated = ("bench/results/",)
    missing = sorted(ref for ref in references if not (REPO / ref).exists() and not ref.startswith(generated))
    assert not missing, f"README names files that are not in the repository: {missing}"


def test_readme_does_not_send_readers_outside_the_repository():
    for outside in ("../shared", "DESIGN.md", "STYLE.md", "on the map in DESIGN"):
        assert outside not in README


def test_readme_management_commands_exist():
    commands = set(re.findall(r"manage\.py (\w+)", README))
    assert "create_tenant" in commands
    known = subprocess.run([str(Path(__import__("sys").executable)), "manage.py", "help", "--commands"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not sorted(commands - set(known))
