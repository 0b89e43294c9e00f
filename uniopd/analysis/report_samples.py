"""The report's sample rollouts of multimodal runs: each held-out picture the run kept (images/,
uniopd/run_dir.py) with its question, answer and the responses of the run's last evaluation."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

RESPONSES_PER_PROMPT = 2


def _last_eval(run: Path) -> tuple[str, list[dict]]:
    steps = sorted((run / "eval").glob("step_*.jsonl"))
    if not steps:
        return "", []
    lines = steps[-1].read_text().splitlines()
    records = []
    for line in lines:  # a run still being written may end in a partial line
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return steps[-1].stem.removeprefix("step_").lstrip("0") or "0", records


def sample_rollouts_html(run: Path) -> str:
    """A <details> block for one run, or "" when it kept no pictures."""
    index = run / "images" / "index.json"
    if not index.exists():
        return ""
    step, samples = _last_eval(run)
    by_prompt: dict[str, list[dict]] = {}
    for s in samples:
        by_prompt.setdefault(s["prompt_id"], []).append(s)
    rows = []
    for entry in json.loads(index.read_text()):
        pictures = "".join(
            f"<img class='sample' alt='{html.escape(entry['prompt_id'])}' src='data:image/png;"
            f"base64,{base64.b64encode((run / 'images' / f).read_bytes()).decode()}'>"
            for f in entry["files"]
            if (run / "images" / f).exists()
        )
        answers = "".join(
            f"<li>{'&#10003;' if (s.get('reward') or 0) > 0 else '&#10007;'} "
            f"<code>{html.escape(s['completion'])}</code></li>"
            for s in by_prompt.get(entry["prompt_id"], [])[:RESPONSES_PER_PROMPT]
        )
        rows.append(
            f"<tr><td>{pictures}</td><td>{html.escape(entry['prompt'])}<br>"
            f"<span class='note'>answer {html.escape(str(entry.get('answer')))}</span></td>"
            f"<td><ul>{answers or '<li class=note>no evaluation yet</li>'}</ul></td></tr>"
        )
    title = f"{run.name}: held-out pictures and the responses of step {step or '-'}"
    return (
        f"<details><summary>{html.escape(title)}</summary><table class='samples'>"
        "<thead><tr><th>picture</th><th>question</th><th>responses</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></details>"
    )
