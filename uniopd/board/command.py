"""`uniopd board RUNS...`: TensorBoard over run directories, live, on 127.0.0.1.

    uniopd board runs/study                # every run under it; prints the address
    uniopd board runs/a runs/b --port 6007

Each run directory is followed while it is written (uniopd/board/follow.py) into a TensorBoard
log folder of its own, named `<method>/<setting>/s<seed>`: TensorBoard's run selector then groups
OPD, Uni-OPD and GRPO, their settings and seeds, and every curve (per-domain held-out accuracy,
reward, order consistency before and after calibration, rollouts kept by balancing, per-phase
time) is drawn against step or wall time for all of them at once. The run directories stay the
ground truth: the board writes only into its own folder (`--logdir`, default a temporary one).

The Custom Scalars tab is laid out as the saved wandb workspace is (panels.py): charts that put
order consistency before and after calibration, or the phases' times, side by side.

A folder that is not a run is skipped and named; a busy port is replaced by a free one, said so.
The web server's access log (a line per request, a hundred per page load) is left out unless -v.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

POLL_S = 2.0


def run_label(cfg) -> str:
    """`<method>/<setting>/s<seed>` from the run's resolved config."""
    from uniopd.analysis.runs import setting_label
    from uniopd.labels import method_group

    domains = set(cfg.teachers) or {"all"}
    setting = setting_label(cfg, domains) if cfg.method.needs_teacher() else "no teacher"
    label = f"{method_group(cfg)}/{setting}/s{cfg.seed}"
    return re.sub(r"[^A-Za-z0-9._<\-/ ,+]", "_", label)


@dataclass
class Board:
    logdir: Path
    url: str = ""
    followers: list = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)  # taught or evaluated, over all its runs
    _stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> int:
        return sum(f.poll() for f in self.followers)

    def follow(self) -> threading.Thread:
        def loop():
            while not self._stop.wait(POLL_S):
                try:
                    self.poll()
                except OSError as exc:  # a run folder removed while followed
                    log.warning("board: %s", exc)

        thread = threading.Thread(target=loop, name="uniopd-board", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        for f in self.followers:
            f.writer.close()


def find_runs(targets: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Run directories under the targets, and (folder, why) for those given that hold none."""
    from uniopd.analysis.runs import find_run_dirs

    runs, skipped = [], []
    for target in targets:
        path = Path(target)
        if not path.is_dir():
            skipped.append((target, "not a folder"))
            continue
        found = find_run_dirs([path])
        if not found:
            skipped.append((target, "no run directory in it (no config.yaml with meta.json)"))
        runs += found
    return runs, skipped


def prepare(targets: list[str], logdir: Path | None = None) -> Board:
    """The board's log folder with one follower per run (nothing read yet)."""
    from torch.utils.tensorboard import SummaryWriter

    from uniopd.board.follow import RunFollower
    from uniopd.config import load_experiment

    runs, skipped = find_runs(targets)
    key = hashlib.sha256("\n".join(sorted(map(str, runs))).encode()).hexdigest()[:10]
    logdir = logdir or Path(tempfile.gettempdir()) / f"uniopd-board-{key}"
    board = Board(logdir, skipped=skipped)
    seen: set[str] = set()
    for run in runs:
        try:
            cfg = load_experiment(run / "config.yaml", [])
        except Exception as exc:  # noqa: BLE001 - a config this version cannot read
            board.skipped.append((str(run), f"its config.yaml does not load ({exc})"))
            continue
        label = run_label(cfg)
        board.domains |= set(cfg.teachers)
        name = label
        while name in seen:  # two runs of one cell (a rerun): both shown
            name = f"{label} ({run.name})"
        seen.add(name)
        out = logdir / name
        for old in out.glob("events.out.tfevents.*"):  # a fresh copy each start
            old.unlink()
        board.followers.append(RunFollower(run, SummaryWriter(str(out), flush_secs=POLL_S)))
    return board


def write_layout(board: Board) -> dict:
    """The Custom Scalars page from panels.py, over the domains the runs name (call after a first
    poll, so evaluated domains count). Written into every run's folder, as the mirror does:
    TensorBoard merges the runs' layouts, and no empty run shows up in the selector."""
    from uniopd.tracking.panels import tensorboard_layout

    layout = tensorboard_layout(sorted(board.domains.union(*(f.domains for f in board.followers))))
    for old in board.logdir.glob("events.out.tfevents.*"):  # an older board's layout at the top
        old.unlink()
    for follower in board.followers:
        follower.writer.add_custom_scalars(layout)
        follower.writer.flush()
    return layout


def free_port(asked: int) -> tuple[int, bool]:
    """`asked` if it can be bound on 127.0.0.1, else a free one; (port, whether it was asked)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", asked))
            return asked, True
        except OSError:
            pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1], False


def start(board: Board, port: int) -> str:
    """Serve the board's log folder with TensorBoard on 127.0.0.1; its address."""
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(
        argv=[
            None,
            "--logdir",
            str(board.logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            str(int(POLL_S)),
            "--load_fast",
            "false",  # the Python loader: no data-server binary, the same on every machine
        ]
    )
    board.url = tb.launch()
    return board.url


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def quiet_access_log() -> None:
    """Drop the web server's request lines. A filter, not a level: TensorBoard resets the
    werkzeug logger's level when it starts its server."""
    werkzeug = logging.getLogger("werkzeug")
    if _below_warning not in werkzeug.filters:
        werkzeug.addFilter(_below_warning)


def cmd_board(args) -> int:
    from uniopd.terminal import fail

    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    if not getattr(args, "verbose", False):
        quiet_access_log()
    board = prepare(args.runs, Path(args.logdir) if args.logdir else None)
    for folder, why in board.skipped:
        print(f"uniopd board: skipped {folder}: {why}")
    if not board.followers:
        return fail("board: no run directory to show in " + ", ".join(args.runs))
    t0 = time.perf_counter()
    board.poll()
    write_layout(board)
    port, asked = free_port(args.port)
    if not asked:
        print(f"uniopd board: port {args.port} is in use; using {port}")
    url = start(board, port)
    print(
        f"uniopd board: {len(board.followers)} runs, read in {time.perf_counter() - t0:.1f} s; "
        f"{url} (Ctrl-C stops; runs still being written update every {POLL_S:g} s)",
        flush=True,  # the address, at once, also when the output goes to a file or a pipe
    )
    board.follow()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        board.stop()
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("board", help="a live TensorBoard comparing runs, on 127.0.0.1")
    p.add_argument("runs", nargs="+", help="run directories or folders of them")
    p.add_argument("--port", type=int, default=6006, help="port (a busy one is replaced)")
    p.add_argument("--logdir", help="TensorBoard's folder (default: a temporary one per run set)")
    p.set_defaults(fn=cmd_board)
