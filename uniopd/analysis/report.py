"""`uniopd report`: one self-contained HTML page (no network, no server) comparing the runs it is
given: the benchmark and ablation tables, every figure (embedded), sample rollouts of multimodal
runs (each kept picture with the responses to it), and each run's config.

    uniopd report runs/study --teacher math=... --teacher code=... --out report.html
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

from uniopd.analysis.make import make_all

SCRIPT = """
// click a column header to sort that table; marks the page ready for headless checks
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => { const t = r.cells[col].innerText; const n = parseFloat(t); return isNaN(n) ? t : n; };
  const dir = th.dataset.dir = th.dataset.dir === "asc" ? "desc" : "asc";
  rows.sort((a, b) => (key(a) > key(b) ? 1 : -1) * (dir === "asc" ? 1 : -1)).forEach(r => body.appendChild(r));
}));
document.body.dataset.ready = "yes";
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; cursor: pointer; } img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f8f8f8; padding: 8px; overflow-x: auto; } .note { color: #666; }
img.sample { width: 96px; image-rendering: pixelated; }
"""


def _md_table_to_html(md: str) -> str:
    """The table's rows as an HTML table, and the lines under it (what it rests on) as notes."""
    rows = [line.strip() for line in md.strip().splitlines() if line.strip()]
    lines = [line.strip("|").split("|") for line in rows if line.startswith("|")]
    notes = [line for line in rows if not line.startswith("|")]
    head, body = lines[0], [row for row in lines[2:]]
    cell = lambda c: html.escape(c.strip()).replace("**", "")  # noqa: E731
    bold = lambda c: f"<b>{cell(c)}</b>" if c.strip().startswith("**") else cell(c)  # noqa: E731
    out = [
        "<table class='sortable'><thead><tr>"
        + "".join(f"<th>{cell(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    out += ["<tr>" + "".join(f"<td>{bold(c)}</td>" for c in row) + "</tr>" for row in body]
    out.append("</tbody></table>")
    out += [f"<p class='note'>{html.escape(line)}</p>" for line in notes]
    return "\n".join(out)


def write_report(
    run_roots: list[str], out: Path, teachers: dict, sweep_roots: list[str] = ()
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        figdir = Path(tmp)
        manifest = make_all(run_roots, figdir, teachers, sweep_roots)
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>uniopd report</title>"
            f"<style>{STYLE}</style></head><body>",
            "<h1>uniopd report</h1>",
            f"<p class='note'>Runs from {html.escape(', '.join(run_roots))}; made by "
            f"<code>{html.escape(manifest['command'])}</code>.</p>",
        ]
        for name, title in (("benchmark_table", "Methods"), ("ablation_table", "Ablations")):
            md = figdir / f"{name}.md"
            if md.exists():
                parts += [f"<h2>{title}</h2>", _md_table_to_html(md.read_text())]
        if manifest["left_out"]:
            parts += (
                ["<h2>Runs left out</h2><ul>"]
                + [
                    f"<li>{html.escape(x['run'])}: {html.escape(x['why'])}</li>"
                    for x in manifest["left_out"]
                ]
                + ["</ul>"]
            )
        parts.append("<h2>Figures</h2>")
        for fig in manifest["figures"]:
            png = figdir / f"{fig['name']}.png"
            data = base64.b64encode(png.read_bytes()).decode()
            parts += [
                f"<h3>{html.escape(fig['name'])}</h3>",
                f"<img alt='{html.escape(fig['name'])}' src='data:image/png;base64,{data}'>",
                f"<p class='note'>runs: {html.escape(', '.join(fig['runs']))}</p>",
            ]
            if fig.get("note"):
                parts.append(f"<p class='note'><b>note:</b> {html.escape(fig['note'])}</p>")
        for miss in [*manifest["missing"], *manifest["skipped"]]:
            parts.append(
                f"<p class='note'>{html.escape(miss['name'])}: {html.escape(miss['why'])}</p>"
            )
        from uniopd.analysis.report_samples import sample_rollouts_html
        from uniopd.analysis.runs import find_run_dirs

        runs = find_run_dirs([Path(r) for r in run_roots])
        samples = [block for block in map(sample_rollouts_html, runs) if block]
        if samples:  # the first run's unfolded
            samples[0] = samples[0].replace("<details>", "<details open>", 1)
        if samples:
            parts += ["<h2>Sample rollouts</h2>", *samples]
        parts.append("<h2>Run configs</h2>")
        for run in runs:
            cfg = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else ""
            parts.append(
                f"<details><summary>{html.escape(run.name)}</summary><pre>{html.escape(cfg)}</pre></details>"
            )
        parts.append(f"<script>{SCRIPT}</script></body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return {
        "figures": len(manifest["figures"]),
        "left_out": manifest["left_out"],
        "bytes": out.stat().st_size,
        "manifest": json.loads(json.dumps(manifest)),
    }
