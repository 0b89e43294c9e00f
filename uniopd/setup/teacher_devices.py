"""`teacher_device`: where each process puts its teachers. Every data-parallel process loads its
own copy of the teachers, so with several processes one fixed GPU would hold them all. A form is
given for every teacher, or per domain ({math: ..., code: ...}):

    cpu, cuda:1               one device (with several processes: cpu, or a rule or list below)
    cuda:{local_rank+4}       a rule: the process of local rank r uses cuda:(r + 4);
                              cuda:{local_rank} is the process's own GPU, the student's
    [cuda:4, cuda:5, ...]     a list: entry r for the process of local rank r (a device may be
                              listed more than once, to share it on purpose)

uniopd.setup.plan checks every process's device against the GPUs torch sees before any model
loads; uniopd.setup.parts resolves this process's when it loads the teachers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import torch

from uniopd.setup.plan_images import PlanError

Form = str | list[str]
Setting = Form | dict[str, Form] | None

RULE = re.compile(r"\{\s*local_rank\s*(?:\+\s*(\d+)\s*)?\}")


def form_for(setting: Setting, domain: str) -> Form | None:
    """The form that places `domain`'s teacher (None: the student's device)."""
    return setting.get(domain) if isinstance(setting, dict) else setting


def device_name(form: Form, local_rank: int) -> str:
    """The device `form` gives the process of local rank `local_rank`."""
    if isinstance(form, list):
        return form[local_rank]
    return RULE.sub(lambda m: str(local_rank + int(m.group(1) or 0)), form)


def local_processes(processes: int) -> int:
    """The run's processes on this machine: a launcher that spans machines says how many
    (LOCAL_WORLD_SIZE); `uniopd run --nproc N` starts all N here."""
    return min(processes, int(os.environ.get("LOCAL_WORLD_SIZE", processes)))


def check_teacher_devices(setting: Setting, teachers: Iterable[str], processes: int) -> None:
    """Every local process's teacher device exists here (PlanError naming the field otherwise)."""
    named = list(setting.items()) if isinstance(setting, dict) else [("*", setting)]
    for domain, form in named:
        if form is None:
            continue
        where = "teacher_device" + ("" if domain == "*" else f".{domain}")
        if domain != "*" and domain not in teachers:
            raise PlanError(f"{where}: no teacher is named for domain {domain!r}")
        _check_form(where, form, local_processes(processes))


def _check_form(where: str, form: Form, processes: int) -> None:
    if isinstance(form, list) and len(form) < processes:
        raise PlanError(
            f"{where}: lists {len(form)} device(s), one per process, but the run has "
            f"{processes} processes"
        )
    per_process = isinstance(form, list) or RULE.search(form) is not None
    seen = torch.cuda.device_count()  # the GPUs this process sees (CUDA_VISIBLE_DEVICES)
    for rank in range(processes):
        name = device_name(form, rank)
        at = f"{where}[{rank}]" if isinstance(form, list) else where
        try:
            dev: torch.device | None = torch.device(name)
        except RuntimeError:
            dev = None
        if dev is None or dev.type not in ("cpu", "cuda"):  # what the student may sit on too
            raise PlanError(f"{at}: {name!r} is not a device (cpu, cuda, cuda:1, ...)")
        if dev.type == "cuda" and processes > 1 and not per_process:
            raise PlanError(
                f"{where}: {name} would hold the teachers of all {processes} processes (each "
                f"loads its own copy); give each process its own GPU, with a rule "
                f"(cuda:{{local_rank+{processes}}}: process r on cuda:r+{processes}) or a list "
                "with one device per process"
            )
        if dev.type == "cuda" and (not seen or (dev.index is not None and dev.index >= seen)):
            rule = isinstance(form, str) and per_process
            asked = f"{form} gives process {rank} {name}" if rule else f"{name} asked for"
            raise PlanError(f"{at}: {asked}, but torch sees {seen} CUDA device(s)")
