"""``course-kit course`` (``make course``): execute every lesson headless, time it, and build a static site.

Each notebook runs in its own kernel with ``COURSE_PROFILE`` set (``cpu`` by default), in its own folder,
through :func:`~course_lib.kit.notebooks.run_notebooks`; the executed copy is written to ``build/executed/``,
so the stored notebooks are left as they are. For each one the run records its wall time and the peak memory
of the kernel's process tree (:class:`~course_lib.kit.notebooks.PeakMemory`). Then nbconvert turns the executed copies into HTML pages with a
contents page holding the run-time table (``build/site/index.html``); ``times.json`` and ``times.md``
beside it hold the same numbers for the README.
"""

from __future__ import annotations

import html
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import psutil

from course_lib.kit.notebooks import run_notebooks


@dataclass
class NotebookRun:
    notebook: str
    title: str
    seconds: float
    peak_mb: float
    error: str | None


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first Markdown heading of a notebook (without the #s), else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def run_course(notebooks: list[Path], build: Path, profile: str = "cpu", timeout: int = 1800,
               progress: bool = True) -> list[NotebookRun]:
    """Execute ``notebooks`` one by one into ``build/executed/``; return each one's time, peak memory and error."""
    if not notebooks:
        raise ValueError("notebooks: expected at least one notebook, got none")
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        raise ValueError(f"notebooks: expected existing .ipynb files, these do not exist: {missing}")
    results = run_notebooks(notebooks, build / "executed", timeout=timeout, env={"COURSE_PROFILE": profile},
                            progress=progress)
    return [NotebookRun(r.path.name, notebook_title(nbformat.read(r.path, as_version=4), r.path.stem),
                        round(r.seconds, 1), r.peak_mb, r.error) for r in results]


def times_table(runs: list[NotebookRun]) -> str:
    """A Markdown table: notebook, wall time, peak memory, result; and the total time."""
    lines = ["| notebook | wall time | peak memory | result |", "|---|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r.notebook} | {r.seconds:,.0f} s | {r.peak_mb:,.0f} MB | {'error' if r.error else 'ok'} |")
    total = sum(r.seconds for r in runs)
    lines.append(f"| **total** | **{total:,.0f} s ({total / 60:.0f} min)** | | |")
    return "\n".join(lines)


def build_site(runs: list[NotebookRun], build: Path, profile: str) -> Path:
    """HTML pages of the executed notebooks and an index with the run-time table; returns the index path."""
    from nbconvert import HTMLExporter

    site = build / "site"
    site.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    for r in runs:
        body, _ = exporter.from_filename(str(build / "executed" / r.notebook))
        (site / r.notebook.replace(".ipynb", ".html")).write_text(body, encoding="utf-8")
    machine = f"{platform.machine()}, {psutil.cpu_count(logical=True)} logical CPUs, " \
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(r.notebook.replace('.ipynb', '.html'))}'>{html.escape(r.title)}</a></td>"
        f"<td>{html.escape(r.notebook)}</td><td class='n'>{r.seconds:,.0f} s</td><td class='n'>{r.peak_mb:,.0f} MB</td>"
        f"<td>{'ok' if not r.error else 'error: ' + html.escape(r.error)}</td></tr>" for r in runs)
    total = sum(r.seconds for r in runs)
    index = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The course, executed</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}}
td.n{{text-align:right}}</style></head><body>
<h1>The course, executed</h1>
<p>Every lesson notebook run top to bottom in the <code>{html.escape(profile)}</code> profile by
<code>make course</code>, on {html.escape(machine)}. Wall time per notebook; peak memory is the kernel's
resident memory, sampled every 0.25 s. Total {total:,.0f} s ({total / 60:.0f} min).</p>
<table><tr><th>lesson</th><th>notebook</th><th>wall time</th><th>peak memory</th><th>result</th></tr>
{rows}
</table></body></html>
"""
    (site / "index.html").write_text(index, encoding="utf-8")
    (site / "times.json").write_text(json.dumps({"profile": profile, "machine": machine,
                                                 "runs": [asdict(r) for r in runs]}, indent=1))
    (site / "times.md").write_text(times_table(runs) + "\n")
    return site / "index.html"
