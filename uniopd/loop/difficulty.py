"""Offline difficulty-aware balancing at the start of a run (METHOD 3.1): estimate, cache, balance, record.

The initial student samples n responses per training prompt; its pass count is the prompt's
difficulty. A row with a precomputed pass rate (a `pass_rate` column, kept in `Problem.meta`)
is not sampled: its pass count is round(pass_rate * n). Estimates are cached under
$UNIOPD_HOME/difficulty by (student weights, prompts, sampling settings, seed), so a sweep over
balance ratios samples once. With several processes every one samples and grades its share of
the rows (uniopd.loop.evaluate); the first decides whether the cache holds the estimate and alone
writes the cache and the run directory's files. The run directory gets the difficulty table and
the before / after histograms the paper plots:

    runs/<name>/difficulty/table.csv        prompt_id, domain, level, pass_count, n_samples, p, copies,
                                            pass_count_from ("sampled" or "column")
    runs/<name>/difficulty/histograms.json  per domain: prompts per pass count before, copies after
    runs/<name>/difficulty/estimate.json    the estimate's cost: seconds this run spent on it, and
                                            what its sampling took (an earlier run's, if cached)

Data that is already balanced (balance.offline.mode = prebalanced) is trained on as given, with
no estimate; difficulty/prebalanced.json records it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from uniopd.algorithms import difficulty_balance, difficulty_skew
from uniopd.data import DataError
from uniopd.data.images import image_digest
from uniopd.engine.distributed import Dist
from uniopd.engine.prompts import PromptFormat
from uniopd.home import uniopd_home
from uniopd.loop.evaluate import evaluate
from uniopd.refs import resolve_model
from uniopd.run_dir import RunDir, atomic_write_text
from uniopd.storage.faults import StorageFault
from uniopd.tasks.problem import Problem

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return uniopd_home() / "difficulty"


def model_fingerprint(ref: str) -> str:
    """Identifies the weights: config + name, size and mtime of each weight file (hashing
    gigabytes of a real checkpoint would cost more than the estimate it saves)."""
    path = Path(resolve_model(ref))
    if not path.is_dir():
        return ref  # a hub id: its name is all we know offline
    parts = [(path / "config.json").read_text() if (path / "config.json").exists() else ""]
    for f in sorted(path.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".pt") and f.name != "trainer_state.pt":
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return f"{path.resolve()}|" + "|".join(parts)


def given_pass_rate(problem: Problem) -> float | None:
    """The row's precomputed pass rate (uniopd/data/rows.py checked it is in [0, 1]), if any."""
    return problem.meta.get("pass_rate")


def estimate_pass_counts(
    model,
    tokenizer,
    problems: list[Problem],
    verifiers: dict,
    cfg,
    write: bool = True,
    processor=None,
    dist: Dist | None = None,
    cost: dict | None = None,
) -> list[int]:
    """Pass count of the initial student on each problem: from the row's pass rate when it has
    one, else from the cache or by sampling, shared out over `dist`'s processes (each gets every
    count). `write=False`: a process other than the first leaves the cache to it. `cost`, when
    given, gets "sampled_seconds": what sampling took (as the cache recorded it, when cached)."""
    n = cfg.balance.offline.n_samples
    counts: list[int | None] = [
        None if (rate := given_pass_rate(p)) is None else round(rate * n) for p in problems
    ]
    todo = [i for i, c in enumerate(counts) if c is None]
    if todo:
        sampled = _sampled_pass_counts(
            model,
            tokenizer,
            [problems[i] for i in todo],
            verifiers,
            cfg,
            write,
            processor,
            dist,
            cost,
        )
        for i, c in zip(todo, sampled, strict=True):
            counts[i] = c
    if len(todo) < len(problems):
        log.info("difficulty: %d prompts' pass rates come from the data", len(problems) - len(todo))
    return counts  # type: ignore[return-value]  # every slot is filled


def _sampled_pass_counts(
    model,
    tokenizer,
    problems: list[Problem],
    verifiers: dict,
    cfg,
    write: bool,
    processor=None,
    dist: Dist | None = None,
    cost: dict | None = None,
) -> list[int]:
    off = cfg.balance.offline
    fmt = PromptFormat.of(cfg.data)
    settings = _sampling_settings(cfg, fmt)
    path = cache_dir() / f"{_cache_key(cfg, settings, problems)}.json"
    dist = dist or Dist()
    # the first process's answer for all: each process reading the cache for itself could see
    # it where another does not (a cache folder per machine) and leave that one sampling alone
    cached = dist.broadcast_object(_cached(path) if dist.is_main else None)
    if cached is not None:
        if cost is not None and path.exists():  # what sampling took, when the cache recorded it
            cost["sampled_seconds"] = json.loads(path.read_text()).get("seconds")
        return cached
    start = time.perf_counter()
    log.info(
        "difficulty: sampling %d responses for each of %d prompts", off.n_samples, len(problems)
    )
    _, samples = evaluate(
        model,
        tokenizer,
        problems,
        verifiers,
        n_samples=off.n_samples,
        pass_k=[1],
        temperature=off.temperature,
        top_p=off.top_p,
        top_k=off.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        prompt_format=fmt,
        seed=cfg.seed,
        progress=cfg.output.progress,
        processor=processor,
        dist=dist,
        keep_completions=False,
    )
    n = off.n_samples
    counts = [
        int(sum((s["reward"] or 0) > 0 for s in samples[i * n : (i + 1) * n]))
        for i in range(len(problems))
    ]
    seconds = round(time.perf_counter() - start, 2)
    if cost is not None:
        cost["sampled_seconds"] = seconds
    ungraded = sum(s["reward"] is None for s in samples)
    if ungraded:
        # counted as unsolved for this run only: a grader that could not run (a sandbox that did
        # not start, say) must not leave a cached estimate that every later run would trust
        log.warning(
            "difficulty: %d of %d samples could not be graded (counted as unsolved); this "
            "estimate is not cached",
            ungraded,
            len(samples),
        )
        return counts
    if write:
        record = {"settings": settings, "student": cfg.student.model, "pass_counts": counts}
        _write_cache(path, {**record, "seconds": seconds})
    return counts


def _write_cache(path: Path, record: dict) -> None:
    """The cache saves the next run the sampling; it is not the run's record (the run directory's
    difficulty/ is). A $UNIOPD_HOME that is read-only (a shared, installed world) or full costs the
    next run its shortcut, never this run: said once, and the run goes on."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record) + "\n", "the difficulty cache")
    except (OSError, StorageFault) as exc:
        log.warning(
            "difficulty: the estimate could not be cached in %s (%s); this run goes on, and "
            "the next one with the same settings samples again",
            path.parent,
            exc.reason if isinstance(exc, StorageFault) else (exc.strerror or exc),
        )


def _cached(path: Path) -> list[int] | None:
    if not path.exists():
        return None
    log.info("difficulty: cached estimate %s", path)
    return json.loads(path.read_text())["pass_counts"]


def _sampling_settings(cfg, fmt: PromptFormat) -> dict:
    """How the estimate is sampled, as its cache key and its cached file record it."""
    off = cfg.balance.offline
    settings = {
        "n": off.n_samples,
        "temperature": off.temperature,
        "top_p": off.top_p,
        # "off", not 0: estimates cached before 2026-11-29 under top_k 0 were sampled at top-k 50
        "top_k": off.top_k or "off",
        "max_new_tokens": cfg.rollout.max_new_tokens,
        "template": cfg.data.template,
        "seed": cfg.seed,
    }
    if fmt != PromptFormat(template=cfg.data.template):  # keys of plain prompts stay as they were
        settings["prompt_format"] = asdict(fmt)
    return settings


def _cache_key(cfg, settings: dict, problems: list[Problem]) -> str:
    """The estimate's name in the cache: the student's weights, the settings and the prompts."""
    return hashlib.sha256(
        json.dumps(
            {
                "student": model_fingerprint(cfg.student.model),
                "settings": settings,
                "prompts": [
                    (
                        p.id,
                        p.domain,
                        p.prompt,
                        *([p.messages] if p.messages else []),
                        *([[image_digest(i) for i in p.images]] if p.images else []),
                    )
                    for p in problems
                ],
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]


def offline_balance(
    model,
    tokenizer,
    problems: list[Problem],
    verifiers: dict,
    cfg,
    run_dir: RunDir,
    resume: bool = False,
    write: bool = True,
    processor=None,
    dist: Dist | None = None,
) -> list[Problem]:
    """The training set after the world's difficulty skew (when set) and offline balancing (the
    input itself when neither is on). With several processes (`dist`) every one calls this and
    gets the same list; only a `write` one writes the cache and the run directory's files.

    The list is saved as difficulty/items.json; a resumed run reads it back rather than
    re-estimating, because its `model` is no longer the initial student."""
    off, skew = cfg.balance.offline, cfg.world.difficulty_skew
    if off.mode == "none" and skew is None:
        return list(problems)
    if off.mode == "prebalanced":
        return _prebalanced(problems, cfg, run_dir, write)
    items = run_dir.path / "difficulty" / "items.json"
    if resume:
        by_id = {p.id: p for p in problems}
        return [by_id[i] for i in json.loads(items.read_text())]
    # the estimate's cost, recorded so that analysis counts it in the method's time
    cost: dict = {}
    start = time.perf_counter()
    counts = estimate_pass_counts(
        model, tokenizer, problems, verifiers, cfg, write, processor, dist, cost
    )
    cost["seconds"] = round(time.perf_counter() - start, 2)
    listed = set(range(len(problems)))
    copies: Counter = Counter()
    out: list[Problem] = []
    for domain in sorted({p.domain for p in problems}):  # METHOD 3.1: each domain separately
        idx = [i for i, p in enumerate(problems) if p.domain == domain]
        g = torch.Generator().manual_seed(cfg.seed)
        if skew is not None:
            idx = _skewed(idx, counts, off.n_samples, cfg, domain, g)
            listed -= {i for i, p in enumerate(problems) if p.domain == domain} - set(idx)
        picked = difficulty_balance(
            [counts[i] for i in idx],
            off.n_samples,
            off.ratio,
            off.mode,
            bins=off.bins,
            num_bins=off.num_bins,
            mid_low=off.mid_low,
            mid_high=off.mid_high,
            reference=off.reference,
            max_repeats=off.max_repeats,
            generator=g,
        )
        if not picked:
            raise DataError(
                f"balance.offline.mode={off.mode}: no {domain} training prompt is left (the initial "
                f"student solved {'none' if off.mode == 'drop_all_wrong' else 'all'} of them in "
                f"{off.n_samples} samples); use mode balance or none for this student and data"
            )
        for j in picked:
            copies[idx[j]] += 1
            out.append(problems[idx[j]])
    if not write:
        return out
    _record(run_dir, problems, counts, copies, off.n_samples, listed)
    atomic_write_text(run_dir.path / "difficulty" / "estimate.json", json.dumps(cost) + "\n")
    atomic_write_text(items, json.dumps([p.id for p in out]) + "\n")
    log.info(
        "difficulty: %s%s over %d prompts -> %d training items",
        "" if skew is None else f"skew {skew:g}, then ",
        off.mode,
        len(problems),
        len(out),
    )
    return out


def _prebalanced(problems: list[Problem], cfg, run_dir: RunDir, write: bool) -> list[Problem]:
    """balance.offline.mode = prebalanced: the data is already balanced (the release trains on
    G-OPD's offline_data_balanced.jsonl, whose repeated rows are the balancing), so its rows are
    the training items as given, copies included, and no difficulty is estimated. The run
    directory records that: difficulty/prebalanced.json, rows and distinct prompts per domain."""
    if cfg.world.difficulty_skew is not None:
        raise DataError(
            "balance.offline.mode = prebalanced and world.difficulty_skew are both set: a skew "
            "needs a difficulty estimate, which a pre-balanced training set does not get; "
            "unset one of them"
        )
    if write:
        per_domain: dict[str, dict[str, int]] = {}
        for domain in sorted({p.domain for p in problems}):
            rows = [p for p in problems if p.domain == domain]
            # a copy is a row asking what another row of the domain asks
            distinct = {(p.prompt, json.dumps(p.messages, sort_keys=True)) for p in rows}
            per_domain[domain] = {"rows": len(rows), "distinct_prompts": len(distinct)}
        folder = run_dir.path / "difficulty"
        folder.mkdir(exist_ok=True)
        record = {"mode": "prebalanced", "estimated": False, "domains": per_domain}
        atomic_write_text(folder / "prebalanced.json", json.dumps(record, indent=1) + "\n")
        log.info("difficulty: pre-balanced data, %d rows trained on as given", len(problems))
    return list(problems)


def _skewed(idx: list[int], counts, n: int, cfg, domain: str, g) -> list[int]:
    """The prompts of one domain kept by world.difficulty_skew (indices into the problems)."""
    world = cfg.world
    try:
        chosen = difficulty_skew(
            [counts[i] for i in idx], n, world.difficulty_skew, world.difficulty_skew_size, g
        )
    except ValueError as exc:
        raise DataError(
            f"world.difficulty_skew = {world.difficulty_skew:g} ({domain}): {exc}"
        ) from None
    return [idx[j] for j in chosen]


def _record(run_dir: RunDir, problems, counts, copies, n, listed: set[int]) -> None:
    folder = run_dir.path / "difficulty"
    folder.mkdir(exist_ok=True)
    table = pd.DataFrame(
        {
            "prompt_id": [p.id for p in problems],
            "domain": [p.domain for p in problems],
            "level": [p.meta.get("level") for p in problems],
            "pass_count": counts,
            "n_samples": n,
            "p": [
                c / n if given_pass_rate(p) is None else given_pass_rate(p)
                for p, c in zip(problems, counts)
            ],
            "copies": [copies[i] for i in range(len(problems))],
            "in_list": [i in listed for i in range(len(problems))],  # kept by difficulty_skew
            "pass_count_from": [
                "sampled" if given_pass_rate(p) is None else "column" for p in problems
            ],
        }
    )
    atomic_write_text(folder / "table.csv", table.to_csv(index=False))
    hist = {}
    for domain, rows in table.groupby("domain"):
        natural = rows.groupby("pass_count").size().reindex(range(n + 1), fill_value=0)
        listed_rows = rows[rows.in_list]
        before = listed_rows.groupby("pass_count").size().reindex(range(n + 1), fill_value=0)
        after = rows.groupby("pass_count")["copies"].sum().reindex(range(n + 1), fill_value=0)
        hist[domain] = {
            "pass_count": list(range(n + 1)),
            "natural": natural.tolist(),  # every prompt of the data (before any skew)
            "before": before.tolist(),  # the training list (after the skew, if any)
            "after": after.tolist(),  # ... after offline balancing
        }
    atomic_write_text(folder / "histograms.json", json.dumps(hist, indent=1) + "\n")
