"""The recipe of the tiny world: sizes and training budgets of every built-in model, by version, and
the dials that set the conditions Uni-OPD's claims depend on.

`default` is tuned so the whole world builds in a few minutes on a 2-core CPU, the experts are
strong on their domain, and the student starts far enough below them for distillation to have
work to do. `smoke` runs every stage of the same pipeline in seconds (meaningless models), for tests;
select it with UNIOPD_WORLD=smoke.

The dials (an experiment's `world` section, uniopd/config/world.py) change the recipe:

- `teacher_flaw`: the share of the experts' warm-start solutions that stop one step early, the
  student's own kind of error. An expert that has seen it rates the student's early stops (its
  wrong outcomes) as likely, so its token scores disagree with the outcomes: order consistency
  before calibration falls as the dial rises, while its greedy answers stay right.
- `deficit`: what the student lacks. `habit` (today's): a share of its warm start stops one step
  early, a behaviour an outcome reward also removes. `skill`: its warm start never shows some
  operations (a few code operations, two math phrases), so it rarely or never solves the prompts
  that use them: their groups are all wrong and give an outcome reward nothing, while the
  teacher's tokens still teach.
- `difficulty_skew` acts on the training list at run start, not on any model
  (uniopd/loop/difficulty.py, uniopd/algorithms/difficulty_skew.py).

Version 6 writes its problems as chains of events with a recorded plan (tasks/arith.make_chain,
tasks/pyfunc.make_chain), warm-starts on every horizon up to MAX_HORIZON, and turns the habit into
a chance of quitting at every step, so that a mistake anywhere fails the outcome. Its dials:

- `latent_difficulty`: that chance depends on the prompt's difficulty class (the protagonist in
  math, the argument's name in code), from near 0 to near 1 (LATENT_STOP_HAZARDS), so a prompt's
  pass rate is a property of the prompt rather than sampling noise; `difficulty_skew` then
  skews true difficulty.
- `horizon` (a data dial, no model changes): the number of chained steps of every `train` and
  `test` problem; at MAX_HORIZON the habit student rarely finishes one.
- `deficit: soft_skill`: the skill deficit's phrases are in the warm start, but their arithmetic
  or code line is right in only SOFT_SKILL_RATES of them (a share per domain; misread otherwise,
  one token apart), so the student samples the right token rarely instead of never.

Each model is cached under a key of its own spec and the shared settings (world/paths.py), so a
dial rebuilds only the models it changes.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass

# The default world. Version 6 ships too (builder/prebuilt.py: its students of each dial, the
# flaw-0 experts and its tokenizer), installed when an experiment asks for it (`world.version: 6`);
# its other models (the flawed experts) build on demand.
CURRENT_VERSION = 5
# v1-v3 are not built by this code any more: v3's weights came from a log-prob path that no longer
# exists (docs/journal.md 2026-11-28), so "v3" could only be a mislabelled v4
BUILDABLE_VERSIONS = (4, 5, 6)
DEFICITS = ("habit", "skill", "soft_skill")
TEACHER_FLAW_MAX = 0.9  # a teacher that always stops early would never have learnt the last step
HABIT_EARLY_STOP_RATE = 0.4

# deficit: skill. What the student's warm start never shows; every other phrase of the domain
# still teaches its arithmetic or code, so the gap is these mappings, not facts in general.
HELD_OUT = {
    "math": ["sells", "finds"],
    "code": ["squares it", "negates it", "takes its absolute value", "caps it at nine"],
}

EXPERTS = ("teacher-math", "teacher-code", "teacher-math-large")

# --- version 6 (docs/world.md, "Version 6's dials"; benchmarks/world_v6_dials.py measures them)
MAX_HORIZON = 8
# The habit student's chance of quitting at each step: by design it solves about 0.44 of the
# default levels (1-4; math), near v5's student, and 0.06 at the longest horizon, where 62 % of the
# groups of 8 then have a single outcome (docs/world.md)
HABIT_STOP_HAZARD = 0.3
# latent_difficulty: the chance per difficulty class (class i = NAMES[i] / CLASS_ARG_NAMES[i]),
# from nearly never to nearly always quitting. By design (levels 1-4) the pass rates' intraclass
# correlation is about 0.66 / 0.69 (math / code) and the mean pass rate about 0.45
LATENT_STOP_HAZARDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98)
# deficit: soft_skill. The share of the held-out phrases' warm-start lines written right, per
# domain. At 0.03 in both, the student gave the right token 0.024 (math) but 0.007 (code): each
# code operation has half a math phrase's warm-start lines (four operations against two phrases),
# and one ("squares it") must copy the argument's name. Code's larger share aims its probability
# into the 1-5 % the dial targets (docs/world.md, "Version 6's dials")
SOFT_SKILL_RATE = 0.03
SOFT_SKILL_RATES = {"math": SOFT_SKILL_RATE, "code": 0.06}


@dataclass(frozen=True)
class Dials:
    """The built dials of a world (difficulty_skew is applied at run start, see the module doc)."""

    teacher_flaw: float = 0.0
    deficit: str = "habit"
    latent_difficulty: bool = False  # version 6

    def is_default(self) -> bool:
        return self == Dials()


def _v4() -> dict:
    return {
        # 4: v3's recipe, built through the chunked log-prob arithmetic, whose rounding
        # differs from v3's full-vocabulary log-softmax
        "version": 4,
        "seed": 0,
        "tokenizer": {"vocab_size": 512},
        "models": {
            # name: size (see models.SIZES), SFT domains and steps, then GRPO steps on those domains
            "teacher-math": {
                "size": "base",
                "domains": ["math"],
                "sft_steps": 800,
                "grpo_steps": 15,
            },
            "teacher-code": {
                "size": "base",
                "domains": ["code"],
                "sft_steps": 800,
                "grpo_steps": 15,
            },
            # strong-to-weak: a wider math expert (built only when an experiment names it)
            "teacher-math-large": {
                "size": "large",
                "domains": ["math"],
                "sft_steps": 800,
                "grpo_steps": 15,
            },
            # the student: one layer fewer, and a habit. `early_stop_rate` of its warm-start
            # solutions stop one step early (tasks/arith.early_stop_solution), so it knows the
            # content but often quits too soon: a shared behaviour the experts flag at one token.
            # docs/journal.md 2026-11-23 says why (random slips were facts OPD could not fix in minutes;
            # the habit is not). 2000 steps: with 1600 its content capped OPD about 10 points
            # under the code expert.
            "student": {
                "size": "small",
                "domains": ["math", "code"],
                "sft_steps": 2000,
                "grpo_steps": 0,
                "early_stop_rate": HABIT_EARLY_STOP_RATE,
            },
        },
        "sft": {"batch_size": 32, "lr": 5e-3},
        # the experts' domain GRPO normalised by the population std (uniopd's GRPO before v5)
        "grpo": {
            "group_size": 8,
            "prompts_per_batch": 16,
            "lr": 1e-4,
            "eval_prompts": 100,
            "std": "population",
        },
    }


def _v5(dials: Dials) -> dict:
    """v4's sizes and budgets; the experts' GRPO with the released (unbiased) std; the dials."""
    recipe = _v4()
    models = recipe["models"]
    recipe["version"] = 5
    recipe["grpo"]["std"] = "unbiased"
    # the tokenizer splits text as the Qwen2Tokenizer every run loads it as (world/tokenizer.py)
    recipe["tokenizer"]["pretokenizer"] = "qwen2"
    # 1200 warm-start steps for the experts: with this tokenizer the math expert had not made the
    # sudden transition to copying each event's number by step 800 (greedy 0.36, loss 0.12;
    # docs/journal.md 2026-11-29); the student's 2000 steps are unchanged
    for name in EXPERTS:
        models[name]["sft_steps"] = 1200
    if dials.teacher_flaw:
        for name in EXPERTS:
            models[name]["early_stop_rate"] = dials.teacher_flaw
    if dials.deficit == "skill":
        models["student"]["early_stop_rate"] = 0.0
        models["student"]["held_out"] = copy.deepcopy(HELD_OUT)
    models.update(copy.deepcopy(VISUAL_MODELS))
    return recipe


# The visual student's habit is stronger than the text student's: at 0.4 it started at 0.80
# (avg@4) against the text teacher's 0.975, too close to the ceiling to measure distillation
# (docs/journal.md 2026-11-29); its habit only touches two- and three-colour questions.
VISUAL_HABIT_RATE = 0.6
# The visual student's habit in the describe task (issue 31): the share of its warm-start
# descriptions that name one colour whose row is empty (tasks/describe.hallucinated_solution)
HALLUCINATION_RATE = 0.5

# The visual domain's models (uniopd/tasks/shapes.py), built only when an experiment names one.
# Each starts from a built text model of the same world (`init`) and learns the pictures in a
# short warm start. `kind: image-text` is a LLaVA model (world/models.py): the text model's
# weights behind a tiny vision tower. `reads: rendering`: a text model whose warm start shows the
# picture's text rendering instead (tasks/shapes.text_problem), the cross-modal teacher.
VISUAL_MODELS = {
    # the student: the text student with eyes, and its habit (a share of its visual warm start
    # counts only the first colour asked). Some math and code stay in its warm start (`replay`:
    # problems per domain), so that the multi-teacher run across modalities starts from a
    # student that still knows them. The tiny models learn to read the pictures in a sudden
    # transition after some 700 steps of pictures (docs/journal.md 2026-11-29): 1400 steps, 86 % of
    # them pictures, each batch from one domain (no picture batch padded to a code row's length).
    # Issue 31 (SENTINEL): it also learns to describe the pictures (tasks/describe.py: 2000
    # descriptions, HALLUCINATION_RATE of them naming an empty row); 1800 steps (1400 before) keep
    # its share of picture-counting steps as it was (about 1200).
    "student-visual": {
        "size": "small",
        "kind": "image-text",
        "init": "student",
        "domains": ["visual"],
        "replay": {"math": 500, "code": 500, "describe": 2000},
        "sft_steps": 1800,
        "grpo_steps": 0,
        "early_stop_rate": VISUAL_HABIT_RATE,
        "hallucination_rate": HALLUCINATION_RATE,
    },
    # the multimodal expert: built from config like the text experts, warm-started and
    # GRPO-trained on the pictures. Starting it from the math expert's language model was
    # tried: after 1000 steps it read 82 % of the held-out pictures (greedy), from scratch 100 %
    # Issue 31: it also describes the pictures, faithfully (2000 descriptions, 1200 steps: 900
    # of them counting as before), the describe task's teacher
    "teacher-visual": {
        "size": "base",
        "kind": "image-text",
        "domains": ["visual"],
        "replay": {"describe": 2000},
        "sft_steps": 1200,
        "grpo_steps": 8,
    },
    # the text expert of the cross-modal setting: the math expert reading the text rendering
    # (300 steps: 0.80 greedy; 800: 0.98)
    "teacher-visual-text": {
        "size": "base",
        "init": "teacher-math",
        "reads": "rendering",
        "domains": ["visual"],
        "sft_steps": 650,
        "grpo_steps": 0,
    },
}


def _v6(dials: Dials) -> dict:
    """v5's sizes, budgets and experts on v6's chains; the habit as a chance per step."""
    recipe = _v5(Dials(teacher_flaw=dials.teacher_flaw))
    recipe["version"] = 6
    # what the builder passes to tasks/builtin.builtin_problems (and select_world to every run)
    # 1000 held-out problems a domain (200 before): the study's paired evaluations need more
    # prompts than samples, the prompts' own difficulty being most of the spread (ICC)
    recipe["data"] = {"chains": True, "max_horizon": MAX_HORIZON, "sizes": {"test": 1000}}
    student = recipe["models"]["student"]
    del student["early_stop_rate"]
    if dials.deficit == "habit":
        hazards = LATENT_STOP_HAZARDS if dials.latent_difficulty else None
        student["stop_hazard"] = list(hazards) if hazards else HABIT_STOP_HAZARD
    elif dials.deficit == "skill":
        student["held_out"] = copy.deepcopy(HELD_OUT)
    else:
        student["misread"] = {
            "phrases": copy.deepcopy(HELD_OUT),
            "right_rate": dict(SOFT_SKILL_RATES),
        }
    return recipe


def _smoke(recipe: dict) -> dict:
    """Every stage of the same pipeline in seconds (meaningless models), for tests."""
    recipe = copy.deepcopy(recipe)
    for spec in recipe["models"].values():
        spec["sft_steps"], spec["grpo_steps"] = 3, min(spec["grpo_steps"], 1)
    recipe["grpo"].update(group_size=2, prompts_per_batch=2, eval_prompts=4)
    return recipe


def check_dials(version: int, dials: Dials) -> None:
    """ValueError naming the setting when this code cannot build the combination."""
    if version not in BUILDABLE_VERSIONS:
        raise ValueError(
            f"world.version: {version} is not built by this code any more; buildable versions: "
            f"{', '.join(map(str, BUILDABLE_VERSIONS))} (current {CURRENT_VERSION})"
        )
    if not 0.0 <= dials.teacher_flaw <= TEACHER_FLAW_MAX:
        raise ValueError(
            f"world.teacher_flaw: {dials.teacher_flaw} is outside [0, {TEACHER_FLAW_MAX}]"
        )
    if dials.deficit not in DEFICITS:
        raise ValueError(f"world.deficit: {dials.deficit!r}; known: {', '.join(DEFICITS)}")
    if version < 5 and not dials.is_default():
        raise ValueError(
            f"world.version: {version} has no dials (they came with version 5); "
            f"teacher_flaw {dials.teacher_flaw} / deficit {dials.deficit!r} need version 5"
        )
    if version < 6 and (dials.latent_difficulty or dials.deficit == "soft_skill"):
        which = "latent_difficulty" if dials.latent_difficulty else "deficit"
        raise ValueError(f"world.{which}: {_v6_only(dials)} needs world.version 6 (has {version})")
    if dials.latent_difficulty and dials.deficit != "habit":
        raise ValueError(
            f"world.latent_difficulty: the difficulty classes set the habit's chance of quitting; "
            f"deficit {dials.deficit!r} has no habit (use deficit: habit)"
        )


def check_horizon(version: int, horizon: int | None) -> None:
    """ValueError naming the setting when the data dial `horizon` cannot be made."""
    if horizon is None:
        return
    if version < 6:
        raise ValueError(f"world.horizon: {horizon} needs world.version 6 (has {version})")
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"world.horizon: {horizon} is outside [1, {MAX_HORIZON}]")


def _v6_only(dials: Dials) -> str:
    return "latent_difficulty: true" if dials.latent_difficulty else f"deficit {dials.deficit!r}"


def make_recipe(version: int = CURRENT_VERSION, dials: Dials = Dials(), base: str = "default"):
    check_dials(version, dials)
    recipe = _v4() if version == 4 else _v5(dials) if version == 5 else _v6(dials)
    if base == "smoke":
        return _smoke(recipe)
    if base != "default":
        raise ValueError(f"UNIOPD_WORLD={base!r}: unknown tiny-world recipe; known: default, smoke")
    return recipe


DEFAULT = make_recipe()
SMOKE = make_recipe(base="smoke")

# The world a process resolves `builtin:` models in. Kept in the environment, so that the
# processes a run starts (world builders, data-parallel ranks, sweep workers) resolve the same one.
_ENV = "UNIOPD_WORLD_DIALS"


def select_world(
    version: int = CURRENT_VERSION, dials: Dials = Dials(), horizon: int | None = None
) -> None:
    """Make `builtin:` references of this process and its children resolve in this world: its
    models, and its data at this `horizon` (tasks/builtin.py)."""
    from uniopd.tasks.builtin import select_data

    check_dials(version, dials)
    check_horizon(version, horizon)
    if version == CURRENT_VERSION and dials.is_default():
        os.environ.pop(_ENV, None)
    else:
        os.environ[_ENV] = json.dumps({"version": version, **asdict(dials)}, sort_keys=True)
    data = make_recipe(version, dials).get("data")
    select_data(data and ({**data, "horizon": horizon} if horizon else data))


def selected_world() -> tuple[int, Dials]:
    raw = os.environ.get(_ENV)
    if not raw:
        return CURRENT_VERSION, Dials()
    spec = json.loads(raw)
    version = spec.pop("version")
    return version, Dials(**spec)


def active_recipe() -> dict:
    version, dials = selected_world()
    return make_recipe(version, dials, os.environ.get("UNIOPD_WORLD", "default"))
