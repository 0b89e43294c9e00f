"""The repository documents itself: the method and the results live in docs/, nothing points outside.

- no file of the repository (other than .git*) refers to the sibling folder the project started from;
- every `METHOD x.y` citation in code, tests, experiment files and docs names a section heading of
  docs/method.md (`## 2. Title` for a section, `### 3.1 Title` for a subsection);
- the docs pages exist.

Files are those git knows: tracked ones, plus new ones not ignored (so a page is checked before its
first commit).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
METHOD_PAGE = ROOT / "docs" / "method.md"
OUTSIDE = ("../" + "shared").encode()  # spelled in two parts so this file does not match itself
CITATION = re.compile(r"METHOD (\d+(?:\.\d+)?)")
HEADING = re.compile(r"^(#{2,3}) (\d+(?:\.\d+)?)\.? ", re.MULTILINE)


def repo_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({n for n in out.decode().split("\0") if n})
    return [
        ROOT / n for n in names if not n.split("/")[0].startswith(".git") and (ROOT / n).is_file()
    ]


def method_sections() -> set[str]:
    """Section numbers of docs/method.md: `## 2. Title` -> "2", `### 3.1 Title` -> "3.1"."""
    sections = set()
    for hashes, number in HEADING.findall(METHOD_PAGE.read_text(encoding="utf-8")):
        assert (len(hashes) == 2) == ("." not in number), (
            f"docs/method.md: '{hashes} {number}': sections are '## N.', subsections '### N.M'"
        )
        sections.add(number)
    return sections


def test_no_file_refers_outside_the_repository():
    hits = [str(p.relative_to(ROOT)) for p in repo_files() if OUTSIDE in p.read_bytes()]
    assert not hits, f"these files refer to {OUTSIDE.decode()} (outside the repository): {hits}"
    # nor to the outside specification by its file name: the method is docs/method.md
    outside_spec = ("METHOD" + ".md").encode()
    named = [str(p.relative_to(ROOT)) for p in repo_files() if outside_spec in p.read_bytes()]
    assert not named, f"these files name the outside specification, not docs/method.md: {named}"


def test_method_page_keeps_the_numbering_that_code_cites():
    sections = method_sections()
    required = {"1", "2", "3", "3.1", "3.2", "4", "4.1", "4.2", "4.3", "5", "6", "7", "8"}
    assert required <= sections, f"docs/method.md lacks sections {sorted(required - sections)}"
    assert "`METHOD x.y`" in METHOD_PAGE.read_text(encoding="utf-8").split("\n## ")[0], (
        "docs/method.md should open by saying that `METHOD x.y` citations refer to its sections"
    )


def test_every_method_citation_names_an_existing_section():
    sections = method_sections()
    dangling = []
    for path in repo_files():
        if path.suffix not in (".py", ".yaml", ".yml", ".md"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for number in CITATION.findall(line):
                if number not in sections:
                    dangling.append(f"{path.relative_to(ROOT)}:{n}: METHOD {number}")
    assert not dangling, "citations of sections docs/method.md does not have: " + "; ".join(
        dangling
    )


def test_docs_pages_exist():
    for page in ("method.md", "results.md"):
        path = ROOT / "docs" / page
        assert path.is_file() and path.read_text(encoding="utf-8").startswith("# "), (
            f"docs/{page} is missing or has no title"
        )
    # written separately; for now it only has to be there
    assert (ROOT / "docs" / "extending.md").is_file(), "docs/extending.md is missing"
