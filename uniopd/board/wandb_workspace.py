"""`uniopd workspace ENTITY/PROJECT`: a saved wandb workspace (a named view of the project) laid
out from panels.py: per-domain held-out accuracy against step and wall time, reward, order
consistency before and after calibration, rollouts kept by balancing, time per phase. Runs are
grouped by the mirror's run group (OPD, Uni-OPD, GRPO, ...), each line the mean over seeds with
its standard error; sweep trials (job type = their sweep) are left out, so they do not pull a
method's mean.

    uniopd workspace my-team/uniopd                   # domains found in the project; saves, prints the URL
    uniopd workspace my-team/uniopd --domains math code --dry-run --spec view.json

Built with wandb-workspaces, W&B's own library for saved views. Saving needs a wandb login and
the service; `--dry-run` builds the same view and writes its JSON without either.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from uniopd.terminal import fail
from uniopd.tracking.panels import comparison_sections

X_AXIS = {"step": "Step", "wall": "RelativeTime(Wall)"}  # wandb's names for the run's axes


def comparison_workspace(entity: str, project: str, domains: list[str], name: str):
    """The wandb_workspaces.Workspace comparing the methods (nothing is sent until .save())."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    sections = [
        ws.Section(
            name=section.name,
            is_open=True,
            panels=[
                wr.LinePlot(
                    title=chart.title,
                    x=X_AXIS[chart.x],
                    y=list(chart.metrics),
                    groupby="Group",
                    groupby_aggfunc="mean",
                    groupby_rangefunc="stderr",
                )
                for chart in section.charts
            ],
        )
        for section in comparison_sections(domains)
    ]
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=sections,
        runset_settings=ws.RunsetSettings(
            groupby=[expr.Metric("Group")],
            filters=expr.And(expr.Metric("JobType") == "train"),
        ),
    )


def project_domains(path: str) -> list[str]:
    """The domains the project's runs evaluated (their summaries' eval/<domain>/acc)."""
    import wandb

    found = set()
    for run in wandb.Api().runs(path, per_page=50):
        for key in run.summary.keys():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "eval" and parts[2] == "acc":
                found.add(parts[1])
    return sorted(found)


def cmd_workspace(args) -> int:
    from uniopd.analysis.runs import WandbSourceError, project_path

    try:
        entity, project = project_path(args.project)
    except WandbSourceError as exc:
        return fail(f"workspace: {exc}")
    domains = args.domains
    if not domains:
        if args.dry_run:
            return fail("workspace: a dry run does not read the project; name --domains")
        try:
            domains = project_domains(args.project)
        except Exception as exc:  # noqa: BLE001 - wandb's errors vary by cause; each is named
            return fail(f"workspace: reading {args.project}: {type(exc).__name__}: {exc}")
        if not domains:
            return fail(
                f"workspace: no run in {args.project} logged eval/<domain>/acc; name --domains"
            )
    view = comparison_workspace(entity, project, domains, args.name)
    charts = sum(len(s.panels) for s in view.sections)
    print(
        f"uniopd: workspace {args.name!r}: {len(view.sections)} sections, {charts} charts, "
        f"domains {', '.join(domains)}, runs grouped by method",
        file=sys.stderr,
    )
    if args.spec:
        spec = view._to_model().model_dump(by_alias=True, mode="json")  # the view as saved
        Path(args.spec).write_text(json.dumps(spec, indent=1) + "\n")
        print(f"uniopd: view written to {args.spec}", file=sys.stderr)
    if args.dry_run:
        return 0
    try:
        view.save()
    except Exception as exc:  # noqa: BLE001 - no login, no network, no such project
        return fail(f"workspace: saving to {args.project}: {type(exc).__name__}: {exc}")
    print(view.url)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "workspace",
        help="save a wandb workspace comparing the methods (OPD, Uni-OPD, GRPO, DPO, ...; needs a "
        "login)",
    )
    p.add_argument("project", metavar="ENTITY/PROJECT")
    p.add_argument(
        "--domains", nargs="+", help="domains to chart (default: those the runs evaluated)"
    )
    p.add_argument("--name", default="uniopd: methods compared", help="the view's name")
    p.add_argument("--spec", help="also write the view as JSON to this file")
    p.add_argument(
        "--dry-run", action="store_true", help="build the view (and --spec) without saving it"
    )
    p.set_defaults(fn=cmd_workspace)
