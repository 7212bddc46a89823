"""``make course``'s site works offline: math and saved widgets render in Chromium with the network cut off.

A small notebook with inline and display math and an IntSlider is executed by ``run_course`` (so its widget
state is saved) and turned into the site by ``build_site``. Each page is opened in Debian's Chromium through
Playwright, served from a loopback ``http.server`` and straight from disk (``file://``), with every request
that leaves the site aborted and counted. None may be, no file may be missing from the site, MathJax must have
typeset every formula in its shipped fonts, and the slider must be drawn from its saved state. Without Chromium
the test skips, except under CI (``CI`` set), where a missing browser is a failure, as in tests/test_browser.py.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.kit.course import build_site, run_course

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("tests/test_site_offline.py: expected Debian's chromium on PATH under CI, found none "
                           "(make test installs it with apt-get when run as root)")
    pytest.skip("Chromium is not installed (apt-get install chromium; make test does it when run as root)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is not installed")

MATH = ("# Returns\n\nThe discount $\\gamma \\in [0, 1)$ weighs a reward $r_t$ by $\\gamma^t$:\n\n"
        "$$G_0 = \\sum_{t=0}^{T} \\gamma^t r_t$$")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site of one executed notebook holding math and a slider left at 7."""
    tmp = tmp_path_factory.mktemp("site")
    nb = new_notebook(cells=[new_markdown_cell(MATH), new_code_cell(
        "import ipywidgets as widgets\nwidgets.IntSlider(value=7, max=10, description='steps')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp / "01_returns.ipynb")
    runs = run_course([tmp / "01_returns.ipynb"], tmp / "build", profile="ci", timeout=120, progress=False)
    assert runs[0].error is None, runs[0].error
    build_site(runs, tmp / "build", "ci")
    return tmp / "build" / "site"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-proxy-server"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(site):
    """``site`` on a free loopback port, as ``python -m http.server`` would serve it."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_pages_reference_no_cdn(site):
    """Every script a page loads is a file of the site (nbconvert's defaults are cdnjs and unpkg URLs)."""
    page = (site / "01_returns.html").read_text()
    sources = re.findall(r'<script src="([^"]+)"', page) + re.findall(r"widgetRendererSrc = '([^']+)'", page)
    assert sources, "expected the pages to load MathJax, require.js and the widget embedder"
    for src in sources:
        assert not urlparse(src).scheme, src
        assert (site / src.split("?")[0]).is_file(), f"{src} is not in the site"


@pytest.mark.parametrize("how", ["http", "file"])
def test_math_and_widgets_render_with_the_network_cut_off(browser, site, server, how):
    base = server if how == "http" else site.as_uri()
    context = browser.new_context()
    blocked: list[str] = []

    def site_only(route):
        url = route.request.url
        if url.startswith((base + "/", "data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", site_only)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    missing: list[str] = []  # files the page asks the site for and does not get
    page.on("requestfailed", lambda r: r.url.startswith(base) and missing.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and missing.append(f"{r.url}: HTTP {r.status}"))
    try:
        page.goto(f"{base}/01_returns.html")
        # MathJax has finished once its queue is empty after the startup typeset.
        page.wait_for_function("window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0"
                               " && !MathJax.Hub.queue.running", timeout=20_000)
        slider = page.locator(".jupyter-widgets.widget-slider")
        sync_api.expect(slider).to_be_visible(timeout=20_000)
        sync_api.expect(slider.locator(".widget-readout")).to_have_text("7")  # the saved state, not a default
        sync_api.expect(slider.locator(".widget-label")).to_have_text("steps")
        assert page.locator(".MathJax_Display").count() == 1  # the $$...$$ block
        assert page.locator(".MathJax").count() == 4  # and the three inline formulas
        text = page.locator(".jp-RenderedMarkdown").inner_text()
        assert "$" not in text and "\\gamma" not in text, text
        # the site's own MathJax settings were read: its shipped STIX-Web fonts, not the absent TeX ones
        assert page.evaluate("MathJax.OutputJax['HTML-CSS'].fontInUse") == "STIX-Web"
    except sync_api.Error as exc:  # a timeout: say what the page could not fetch
        raise AssertionError(f"{exc.message.splitlines()[0]}; aborted: {blocked}; missing: {missing}; "
                             f"page errors: {errors}") from exc
    finally:
        context.close()
    assert not blocked, f"requests outside the site were aborted: {blocked}"
    assert not missing, missing
    assert not errors, errors
