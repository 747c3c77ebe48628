"""A report as a list of blocks, rendered twice: Markdown (images by relative path) and an HTML page. The page
inlines small images as base64 data URIs and links larger ones (rollout GIFs, big grids) where they are, by a
path relative to the page, when they lie in the page's folder (a pipeline's or run's figures: the folder opens
anywhere as a whole, and nothing is stored twice); a large image from outside that folder is copied into a folder
beside the page. So the page stays small enough for a browser to open quickly.

`Details` folds what a reader opens on demand (full configurations, every metric, per-dataset detail): a
collapsible section in the HTML; in the Markdown one line that names the file holding the same (a run's config
or metrics.json) where there is one, else a collapsible section too.

Text may hold `code` spans; nothing else of Markdown is interpreted.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Code:
    text: str
    summary: str  # the line shown while the block is folded


@dataclass
class Details:
    summary: str  # the line shown while folded
    blocks: list  # the blocks inside (any but Details)
    where: str = ""  # a file that holds the same content (`path`): the Markdown names it instead


Block = Heading | Text | Table | Figure | Code | Details
MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
INLINE_LIMIT = 64 * 1024  # bytes: a larger image is copied beside the HTML page and linked, not inlined


def fmt(value: float | None) -> str:
    """A metric as the tables show it: 4 significant digits, scientific when very small or large."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4g}"


def to_markdown(blocks: list[Block], base: Path) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Details):
            if block.where:  # the same content is in a file of the run: Markdown points there
                out.append(f"*{block.summary}: in report.html and {block.where}.*")
            else:  # folded where Markdown is rendered with HTML (GitHub, most viewers)
                inner = to_markdown(block.blocks, base).rstrip()
                out.append(f"<details><summary>{block.summary}</summary>\n\n{inner}\n\n</details>")
            continue
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Table):
            cells = [[c.replace("|", "\\|") for c in row] for row in [block.header, *block.rows]]
            out.append("\n".join(["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(block.header)]))
            out[-1] += "".join("\n| " + " | ".join(row) + " |" for row in cells[1:])
        elif isinstance(block, Figure):
            rel = Path(os.path.relpath(block.path, base)).as_posix()
            out.append(f"![{block.caption}]({rel})\n\n*{block.caption}* (`{rel}`)")
        elif isinstance(block, Code):
            out.append(
                f"<details><summary>{block.summary}</summary>\n\n```yaml\n{block.text.rstrip()}\n```\n</details>"
            )
    return "\n\n".join(out) + "\n"


def inline(text: str) -> str:
    """Escaped HTML with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def data_uri(path: Path) -> str:
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def image_source(path: Path, files: Path | None, inline_limit: int = INLINE_LIMIT) -> str:
    """An <img> src for `path`: a data URI up to `inline_limit` bytes (or when there is no `files` folder), else
    a path relative to the page, which lives in the folder that holds `files`: to `path` itself when it lies in
    that folder, else to a copy in `files` (named after a hash of the source path, so two runs'
    `rollout_test.png` do not collide)."""
    if files is None or path.stat().st_size <= inline_limit:
        return data_uri(path)
    page_dir = files.resolve().parent
    source = path.resolve()
    if source.is_relative_to(page_dir):
        return source.relative_to(page_dir).as_posix()
    name = f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]}_{path.name}"
    files.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, files / name)
    return f"{files.name}/{name}"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
details.fold { margin: 0.6em 0; }
details.fold > summary { cursor: pointer; font-weight: 600; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def to_html(
    blocks: list[Block], title: str, files: Path | None = None, inline_limit: int = INLINE_LIMIT
) -> str:
    """The page; images larger than `inline_limit` bytes are linked, from `files` when copied (`image_source`)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        *html_blocks(blocks, files, inline_limit),
        "</body></html>",
    ]
    return "\n".join(out) + "\n"


def html_blocks(blocks: list[Block], files: Path | None, inline_limit: int) -> list[str]:
    """The HTML of each block (a Details' inner blocks inside its <details>)."""
    out = []
    for block in blocks:
        if isinstance(block, Details):
            out.append(f'<details class="fold"><summary>{inline(block.summary)}</summary>')
            out += html_blocks(block.blocks, files, inline_limit)
            out.append("</details>")
        elif isinstance(block, Heading):
            out.append(f"<h{block.level}>{inline(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            out.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{inline(c)}</th>" for c in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Figure):
            alt = html.escape(block.caption, quote=True)
            out.append(
                f'<figure><img src="{image_source(block.path, files, inline_limit)}" alt="{alt}" loading="lazy">'
                f"<figcaption>{inline(block.caption)} ({html.escape(block.path.name)})</figcaption></figure>"
            )
        elif isinstance(block, Code):
            out.append(
                f"<details><summary>{inline(block.summary)}</summary><pre>{html.escape(block.text)}</pre></details>"
            )
    return out
