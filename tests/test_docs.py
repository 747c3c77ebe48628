"""The README and docs/ hold together: every relative link points at a file of the repository (and, with an
#anchor, at a heading of that file), the README links to every document in docs/ and stays short, it shows
the commands CI runs, and each document says on its first lines what it is for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
README_MAX_LINES = 220  # the README is the newcomer's page; depth goes to docs/
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for line in re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_point_at_files_and_headings(page):
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_catches_a_broken_link_and_anchor(tmp_path):
    """The checks above can fail: a missing file and a missing heading are both reported."""
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Two words\n\n[a](#two-words) [b](missing.md) [c](#nowhere) `[d](x.md)`\n")
    assert relative_links(page) == ["#two-words", "missing.md", "#nowhere"]
    assert anchors(page) == {"top", "two-words"}


def test_readme_is_short_and_links_to_every_doc():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    assert not [d.name for d in DOCS if d.resolve() not in linked]


def test_readme_shows_the_commands_ci_runs():
    """The README's test command is the one CI runs (.ci/run: make lint, make test)."""
    ci = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")
    ]
    assert ci
    readme = (ROOT / "README.md").read_text()
    assert not [command for command in ci if f"`{command}`" not in readme and f"\n{command} " not in readme]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_each_doc_says_what_it_is_for(doc):
    """A title line, then (by the third line) a sentence: the reader knows at once whether to read on."""
    lines = doc.read_text().splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 10
    assert any(len(line.split()) >= 8 for line in lines[1:4])
