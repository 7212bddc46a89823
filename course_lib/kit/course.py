"""``course-kit course`` (``make course``): execute every lesson headless, time it, and build a static site.

Each notebook runs in its own kernel with ``COURSE_PROFILE`` set (``cpu`` by default), in its own folder,
through :func:`~course_lib.kit.notebooks.run_notebooks`; the executed copy is written to ``build/executed/``,
so the stored notebooks are left as they are. For each one the run records its wall time and the peak memory
of the kernel's process tree (:class:`~course_lib.kit.notebooks.PeakMemory`). Then nbconvert turns the executed copies into HTML pages with a
contents page holding the run-time table (``build/site/index.html``); ``times.json`` and ``times.md``
beside it hold the same numbers for the README.

The site works offline: MathJax, require.js and the Jupyter widget embedder are copied into
``build/site/_static/`` (:func:`copy_web_assets`) and the pages point there instead of at CDNs.
"""

from __future__ import annotations

import html
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
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


# MathJax 2 as the jupyter-server-mathjax package ships it: that package has this combined configuration (HTML-CSS
# output), not nbconvert's default TeX-AMS_CHTML-full, and its latest.js would ask a CDN for a newer MathJax.
# local/course is MathJax's place for a site's own settings, written by copy_web_assets (MATHJAX_LOCAL_CONFIG).
MATHJAX_URL = "_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/course"
# The package ships the STIX-Web web fonts only, as Jupyter's classic notebook uses them: without this, HTML-CSS
# asks for its default TeX fonts, which are not there, and draws the math in whatever fonts the system has.
MATHJAX_LOCAL_CONFIG = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
                                 imageFont: null}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/course.js");
"""
# The widget embedder and the AMD loader it needs, pinned: HTMLExporter trait -> (npm spec, file in its tarball,
# path in the site). html-manager 1.0.x is ipywidgets 8's embedder (nbconvert asks unpkg for any version).
NPM_ASSETS = {
    "widget_renderer_url": ("@jupyter-widgets/html-manager@1.0.15", "package/dist/embed-amd.js",
                            "_static/html-manager/embed-amd.js"),
    "require_js_url": ("requirejs@2.3.8", "package/require.js", "_static/require.js"),
}


def npm_assets_dir() -> Path:
    """Where :func:`fetch_npm_assets` keeps its files: inside the environment, like Jupyter's own ``share/``."""
    return Path(sys.prefix) / "share" / "course-kit" / "npm"


def fetch_npm_assets(cache: Path | None = None) -> dict[str, Path]:
    """The files of ``NPM_ASSETS``, fetched once with ``npm pack`` into ``cache``; trait -> local file.

    No PyPI package ships @jupyter-widgets/html-manager's built embed script, so it comes from the npm registry
    (npm checks each tarball's integrity), once per environment; later builds, offline ones included, reuse it.
    Raises RuntimeError saying what to do when npm is missing or the registry cannot be reached.
    """
    cache = cache or npm_assets_dir()
    files = {}
    for trait, (spec, member, _) in NPM_ASSETS.items():
        local = cache / spec.replace("/", "+") / Path(member).name
        if not local.is_file():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError(f"npm is not installed: it fetches {spec} for the offline site once "
                                   f"(apt-get install npm, then make course again)")
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    out = subprocess.run([npm, "pack", spec, "--pack-destination", tmp, "--loglevel=error"],
                                         capture_output=True, text=True, timeout=300)
                except subprocess.TimeoutExpired as exc:
                    raise RuntimeError(f"npm pack {spec} took over 300 s (is the npm registry reachable?)") from exc
                tarballs = list(Path(tmp).glob("*.tgz"))
                if out.returncode != 0 or len(tarballs) != 1:
                    why = " ".join(out.stderr.strip().splitlines()[:2])
                    raise RuntimeError(f"npm pack {spec} failed (is the npm registry reachable?): {why}")
                with tarfile.open(tarballs[0]) as tar:
                    data = tar.extractfile(member).read()
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(local)  # whole or absent: an interrupted fetch is redone, never half-used
        files[trait] = local
    return files


def copy_web_assets(site: Path) -> dict[str, str]:
    """Copy MathJax, require.js and the widget embedder into ``site/_static``; the HTMLExporter URLs that use them.

    MathJax comes from the jupyter-server-mathjax package, the other two from :func:`fetch_npm_assets`. When those
    cannot be fetched, the pages keep nbconvert's CDN URLs for the widgets (a warning says so), as a site whose math
    works offline is better than no site after an hour of lessons.
    """
    urls = {"mathjax_url": MATHJAX_URL}
    spec = importlib.util.find_spec("jupyter_server_mathjax")  # found, not imported (that imports jupyter_server)
    if spec is None:
        raise ModuleNotFoundError("jupyter-server-mathjax is missing: pip install -e . (make course does it)")
    mathjax = Path(spec.submodule_search_locations[0]) / "static"
    shutil.copytree(mathjax, site / "_static" / "mathjax", dirs_exist_ok=True)
    (site / "_static" / "mathjax" / "config" / "local").mkdir(exist_ok=True)
    (site / "_static" / "mathjax" / "config" / "local" / "course.js").write_text(MATHJAX_LOCAL_CONFIG)
    try:
        npm_files = fetch_npm_assets()
    except RuntimeError as exc:
        print(f"course-kit course: widgets will load from a CDN, not offline: {exc}", file=sys.stderr)
        return urls
    for trait, local in npm_files.items():
        site_path = NPM_ASSETS[trait][2]
        (site / site_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, site / site_path)
        urls[trait] = site_path
    return urls


def build_site(runs: list[NotebookRun], build: Path, profile: str) -> Path:
    """HTML pages of the executed notebooks and an index with the run-time table; returns the index path."""
    from nbconvert import HTMLExporter

    site = build / "site"
    site.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab", **copy_web_assets(site))
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
