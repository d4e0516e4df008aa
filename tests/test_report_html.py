"""report.html in a real headless browser (Debian's chromium): it loads without a script error or a
failed resource, shows every table, and every plot decodes (naturalWidth > 0).

The check runs inside the page: a copy of the report gets a probe script that records errors from
the first moment (injected at the top of <head>) and, on load, writes what it found into the DOM,
which `--dump-dom` prints. The report itself is tested unchanged apart from that probe.
Skips, saying why, where chromium is not installed (.ci/run installs it).
"""
import json
import re
import shutil
import subprocess

import pytest
from test_report_tables import study  # noqa: F401  (fixture: synthetic run folders)
from why_common import make_why_study

from reinitlab.report import make_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && t.tagName ? 'resource failed: ' + t.tagName + ' ' + (t.src || '').slice(0, 40)
                                                      : 'script error: ' + e.message);
}, true);
</script>"""

PROBE_TAIL = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {
    errors: window.__errors,
    images: imgs.map(function (i) { return {w: i.naturalWidth, h: i.naturalHeight, complete: i.complete}; }),
    tables: document.querySelectorAll('table').length,
    title: document.title
  };
  var pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(args, tmp_path, timeout=90):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def probe(page_html: str, tmp_path) -> dict:
    page = tmp_path / "probed.html"
    page.write_text(page_html)
    r = chromium(["--virtual-time-budget=10000", "--dump-dom", page.as_uri()], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', r.stdout, re.S)
    assert m, "the page's load handler never ran: " + r.stdout[:500]
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def assert_only_the_sorting_script(html: str) -> None:
    """The report's one script is its own inline table sorter: nothing loaded from anywhere."""
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert len(scripts) == 1 and scripts[0][0] == "", scripts
    assert "http" not in scripts[0][1] and "import" not in scripts[0][1]


SORT_TAIL = """<script>
window.addEventListener('load', function () {
  var table = Array.prototype.slice.call(document.querySelectorAll('table')).filter(function (t) {
    return t.tHead && t.tHead.rows[0].cells[0].textContent === 'method';
  })[0];
  var column = function (c) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[c].textContent; });
  };
  var out = {before: column(0)};
  var th = table.tHead.rows[0].cells[1];
  th.click(); out.asc = column(1); out.asc_methods = column(0);
  th.click(); out.desc = column(1);
  table.tHead.rows[0].cells[0].click(); out.by_name = column(0);
  var pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run does it)")
def test_a_click_on_a_column_head_sorts_its_table(study, tmp_path):  # noqa: F811
    """In the browser: the accuracy table sorted by its first combination's column, ascending then
    descending by the number each cell starts with, then by method name; rows move whole."""
    make_report(study)
    html = (study / "report.html").read_text()
    found = probe(html.replace("</body>", SORT_TAIL + "</body>", 1), tmp_path)
    def numbers(col):
        return [float(v.split()[0].replace("\u2212", "-")) for v in col if v[:1].isdigit()]
    assert len(numbers(found["asc"])) >= 3 and numbers(found["asc"]) == sorted(numbers(found["asc"])), found
    assert numbers(found["desc"]) == sorted(numbers(found["asc"]), reverse=True), found
    assert sorted(found["asc_methods"]) == sorted(found["before"])  # whole rows moved
    assert found["by_name"] == sorted(found["before"], key=str.lower), found


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run does it)")
def test_report_html_renders_in_chromium(study, tmp_path):  # noqa: F811
    make_report(study)
    html = (study / "report.html").read_text()
    assert_only_the_sorting_script(html)  # the probe below is the test's
    probed = html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1)
    found = probe(probed, tmp_path)
    assert found["errors"] == []
    # settings, accuracy, vs baseline, vs long, sign test, failed/diverged runs, and the claims verdict
    assert found["tables"] == 7
    assert len(found["images"]) == 2
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in found["images"]), found["images"]
    assert found["title"].startswith("Study toy-study")

    # the probe can fail: the same page with one plot's PNG header garbled shows a broken image
    broken = re.sub(r"(data:image/png;base64,)[A-Za-z0-9+/]{64}", r"\1" + "A" * 64, probed, count=1)
    bad = probe(broken, tmp_path)
    assert bad["images"][0]["w"] == 0 and bad["errors"], bad

    # and a screenshot renders (what a person opening the file sees)
    shot = tmp_path / "report.png"
    r = chromium(["--window-size=1300,2000", f"--screenshot={shot}", (study / "report.html").as_uri()], tmp_path)
    assert r.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run does it)")
def test_report_html_with_the_why_section_renders_in_chromium(tmp_path):
    """The "why" topics (tables and one figure each) and the claims verdict, from hand-written
    analysis.json files: every table shows and every figure decodes."""
    root = make_why_study(tmp_path / "study")
    rep = make_report(root)
    html = (root / "report.html").read_text()
    assert_only_the_sorting_script(html)
    probed = html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1)
    found = probe(probed, tmp_path)
    assert found["errors"] == []
    # settings; summary: accuracy, vs baseline, vs long, sign test; why: margins, norms, flatness, memorization and
    # probes each mean ± SE, vs baseline, vs long, plus the per-round norms table; the verdict table
    assert found["tables"] == 1 + 4 + 5 * 3 + 1 + 1
    pngs = [p for p in rep.files if p.suffix == ".png"]
    assert len(found["images"]) == len(pngs) == 2 + 5
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in found["images"]), found["images"]
    # the last figure is a "why" figure: a garbled one is caught there too
    broken = re.sub(r"(data:image/png;base64,)[A-Za-z0-9+/]{64}", r"\1" + "A" * 64, probed)
    bad = probe(broken, tmp_path)
    assert all(i["w"] == 0 for i in bad["images"]) and bad["errors"]


FOLD_TAIL = """<script>
window.addEventListener('load', function () {
  var h = Array.prototype.slice.call(document.querySelectorAll('h2')).filter(function (e) {
    return e.textContent.trim() === 'Answer';
  })[0];
  var first = null;  // the first statement: the first list item of the section (the line above it says what is compared)
  for (var e = h ? h.nextElementSibling : null; e && e.tagName !== 'H2' && !first; e = e.nextElementSibling) {
    first = e.tagName === 'LI' ? e : e.querySelector('li');
  }
  var pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify({
    viewport: window.innerHeight,
    heading: h ? h.getBoundingClientRect().top : null,
    first: first ? {bottom: first.getBoundingClientRect().bottom, text: first.textContent.slice(0, 300)} : null,
    headings: Array.prototype.map.call(document.querySelectorAll('h2'), function (e) { return e.textContent.trim(); })
  });
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run does it)")
@pytest.mark.parametrize("width,height", [(1300, 800), (800, 700)])
def test_the_answer_is_on_the_first_screen(study, tmp_path, width, height):  # noqa: F811
    """Opened in a browser window of a laptop's size (and a narrow one), the report's first section
    is the Answer and its first statement ends above the bottom of the window: nobody scrolls to
    learn the conclusion."""
    make_report(study)
    html = (study / "report.html").read_text()
    page = tmp_path / "fold.html"
    page.write_text(html.replace("</body>", FOLD_TAIL + "</body>", 1))
    r = chromium([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                 tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', r.stdout, re.S)
    assert m, r.stdout[:500]
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert found["headings"][0] == "Answer", found["headings"]
    assert found["viewport"] <= height and found["first"] is not None, found
    assert found["first"]["bottom"] <= found["viewport"], found
    assert "long" in found["first"]["text"] or "baseline" in found["first"]["text"], found["first"]
