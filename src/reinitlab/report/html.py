"""report.html: one self-contained file (inline CSS, plots as base64 PNG data URIs, one inline script
that sorts tables, nothing from the network), so it can be mailed, archived or opened from any
folder and still show everything; without JavaScript only the sorting is lost.

The answer comes first, right under the title and a one-line table of contents (a link to every
section), then the settings, the tables, the plots and the other parts."""
from __future__ import annotations

import base64
import html
import re
import time
from pathlib import Path

from .part import Part
from .tables import Tables, sections, status_line

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; white-space: normal; max-width: 16em; } td:first-child, th:first-child { text-align: left; }
td.l { text-align: left; white-space: normal; } td.t { text-align: left; }
p.note { color: #555; font-size: 0.9em; } .meta { color: #666; font-size: 0.85em; }
p.warn { background: #fff3cd; border: 1px solid #e0b100; padding: 0.5em 0.8em; }
.scroll { overflow-x: auto; } figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
nav.toc { font-size: 0.9em; margin: 0.6em 0 1em; } nav.toc a { margin-right: 0.9em; white-space: nowrap; }
"""

# Click a column head to sort its table by that column, again to reverse. Cells that start with a
# number ("+2.48 [+0.85, +4.12] (3)", "76.74 ± 0.25 (3)", "−1.23", "2,000") sort by it, before cells
# of text, which sort alphabetically; the sort is stable, so ties keep the report's order.
SORT_JS = r"""
function reinitlabKey(text) {
  var m = text.replace(/\u2212/g, '-').match(/^\s*([+-]?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)/i);
  return m ? [0, parseFloat(m[1].replace(/,/g, ''))] : [1, text.trim().toLowerCase()];
}
function reinitlabCompare(a, b) {
  if (a[0] !== b[0]) return a[0] - b[0];
  return a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
}
Array.prototype.forEach.call(document.querySelectorAll('table'), function (table) {
  if (!table.tHead || !table.tBodies.length) return;
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.style.cursor = 'pointer';
    th.title = 'click to sort';
    th.addEventListener('click', function () {
      var dir = th.getAttribute('data-sort') === 'asc' ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('data-sort'); });
      th.setAttribute('data-sort', dir === 1 ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (r) { return reinitlabKey(r.cells[col] ? r.cells[col].textContent : ''); };
      rows.sort(function (r, q) { return dir * reinitlabCompare(key(r), key(q)); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _md_inline(text: str) -> str:
    """The headline uses **bold** only."""
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _align(cell: str) -> str:
    """Numbers right-aligned (the default), words left, long text left and wrapped."""
    if len(cell) > 40:
        return " class=l"
    return "" if not cell or re.match(r"[-+−]?[\d.]", cell) else " class=t"


def table_html(title: str, expl: str, header: list[str], rows: list[list[str]], level: int = 2) -> list[str]:
    out = [f"<h{level}>{html.escape(title)}</h{level}>" + (f'<p class="note">{html.escape(expl)}</p>' if expl else "")]
    out.append('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
               + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td{_align(c)}>{html.escape(c)}</td>' for c in row) + "</tr>")
    out.append("</tbody></table></div>")
    return out


def figure_html(path: Path | str, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def part_html(part: Part) -> list[str]:
    out = [f"<h2>{html.escape(part.title)}</h2>"]
    if part.intro:
        out.append(f'<p class="note">{html.escape(part.intro)}</p>')
    if part.lines:
        out.append("<ul>" + "".join(f"<li>{_md_inline(line)}</li>" for line in part.lines) + "</ul>")
    for title, expl, header, rows in part.tables:
        out += table_html(title, expl, header, rows, level=3)
    out += [figure_html(path, caption) for path, caption in part.plots]
    return out


def _toc(body: list[str]) -> tuple[list[str], str]:
    """Every <h2> of `body` with an id, and the one-line table of contents linking to them."""
    links = []

    def number(m: re.Match) -> str:
        links.append((f"s{len(links) + 1}", m.group(1)))
        return f'<h2 id="{links[-1][0]}">{m.group(1)}</h2>'

    body = [re.sub(r"<h2>(.*?)</h2>", number, line) for line in body]
    toc = '<nav class="toc"><b>Contents:</b> ' + " ".join(f'<a href="#{i}">{t}</a>' for i, t in links) + "</nav>"
    return body, toc


def render(t: Tables, title: str, plots: list[tuple[Path, str]], meta: list[str] = (), parts: list[Part] = (),
           warnings: list[str] = (), head: list[Part] = ()) -> str:
    """`head`: the parts before the summary tables (the answer, the settings); `parts`: those after
    the plots."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f'<p class="meta">{html.escape(status_line(t))}. Generated {time.strftime("%Y-%m-%d %H:%M")}'
           + "".join(f"<br>{html.escape(m)}" for m in meta) + "</p>"]
    out += [f'<p class="warn">{_md_inline(w)}</p>' for w in warnings]  # e.g. runs of mixed provenance
    if t.unfinished:
        out.append(f'<p class="note">{len(t.unfinished)} run(s) are not finished yet; re-run the study command '
                   "to complete them.</p>")
    body: list[str] = []
    for part in head:
        body += part_html(part)
    for title_, expl, header, rows in sections(t):
        body += table_html(title_, expl, header, rows)
    if plots:
        body.append("<h2>Plots</h2>")
        body += [figure_html(path, caption) for path, caption in plots]
    for part in parts:
        body += part_html(part)
    body, toc = _toc(body)
    out += [toc, *body, f"<script>{SORT_JS}</script>", "</body></html>"]
    return "\n".join(out)
