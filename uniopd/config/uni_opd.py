"""The Uni-OPD sections of an experiment file: student-side balancing (METHOD 3) and teacher-side
margin calibration (METHOD 4). Every toggle of the recipe is a field here, with help text."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from uniopd.algorithms.difficulty_balance import BinKind, OfflineMode, Reference
from uniopd.algorithms.margin import Direction, MarginMode
from uniopd.algorithms.units import Scope
from uniopd.config.section import _Section, build_options, conflict
from uniopd.registry import check_name
from uniopd.strategies import CALIBRATORS, ONLINE_BALANCERS


class OfflineBalanceConfig(_Section):
    mode: OfflineMode | Literal["prebalanced"] = Field(
        default="none",
        description="Offline difficulty-aware balancing (METHOD 3.1): none; balance = keep every "
        "prompt once and upsample mid-difficulty bins; drop_all_correct / drop_all_wrong = the "
        "filtering baselines; prebalanced = the training data is already balanced (a file that "
        "repeats mid-difficulty rows, as the release's offline_data_balanced.jsonl): its rows are "
        "trained on as given, copies kept, no difficulty estimate sampled.",
    )
    ratio: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Balance ratio rho: a mid bin is upsampled to ceil(rho * n_ref) (1 = flat).",
    )
    n_samples: int = Field(
        default=8,
        ge=1,
        description="Responses sampled from the initial student per prompt to estimate its pass rate.",
    )
    temperature: float = Field(
        default=1.0, gt=0, description="Sampling temperature of the difficulty estimate."
    )
    top_p: float = Field(
        default=0.95, gt=0, le=1, description="Nucleus mass of the difficulty estimate."
    )
    top_k: int = Field(default=50, ge=0, description="Top-k of the difficulty estimate (0 = off).")
    bins: BinKind = Field(
        default="count",
        description="count = one bin per pass count (n+1 bins); width = num_bins equal-width bins "
        "over 0 < p < 1, with p = 0 and p = 1 kept as bins of their own.",
    )
    num_bins: int = Field(default=4, ge=1, description="Mid bins when bins = width.")
    mid_low: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="A prompt is mid-difficulty when mid_low < p < mid_high.",
    )
    mid_high: float = Field(
        default=1.0, gt=0, le=1, description="Upper end of the mid-difficulty range."
    )
    reference: Reference = Field(
        default="max",
        description="n_ref: the largest bin, the mean of the all-wrong and all-correct bins, or the "
        "mean over non-empty bins.",
    )
    max_repeats: int = Field(
        default=8, ge=1, description="Most copies of one prompt in the balanced set."
    )

    @model_validator(mode="after")
    def _mid_range(self) -> OfflineBalanceConfig:
        if self.mid_low >= self.mid_high:
            raise conflict(
                f"mid_low = {self.mid_low} must be below mid_high = {self.mid_high}: no prompt could be mid-difficulty",
                "mid_low",
                "mid_high",
            )
        return self


class OnlineBalanceConfig(_Section):
    enabled: bool = Field(
        default=False,
        description="Online correctness-aware balancing (METHOD 3.2) of every rollout batch.",
    )
    ratio: float = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=True,
        description="Target correct : incorrect ratio r; 0 masks every correct rollout, inf (.inf "
        "in YAML) every incorrect one (the correct-only cell), in every group, one-outcome "
        "groups included (as released).",
    )
    scope: Scope = Field(
        default="group", description="Balance within each prompt group, or over the whole batch."
    )
    in_margin_stats: bool = Field(
        default=True,
        description="Balanced-out rollouts still enter the margin-calibration statistics.",
    )
    strategy: str = Field(
        default="correctness",
        description="The online balancer (`uniopd list`): correctness = METHOD 3.2 with ratio and "
        "scope, or a plugin's name.",
    )
    options: dict[str, Any] = Field(default={}, description="The balancer's own options.")
    _built: Any = PrivateAttr(default=None)

    @field_validator("strategy")
    @classmethod
    def _registered(cls, name: str) -> str:
        return check_name(ONLINE_BALANCERS, name)

    @model_validator(mode="after")
    def _build(self) -> OnlineBalanceConfig:
        strategy = ONLINE_BALANCERS.get(self.strategy)
        self._built = strategy(self, build_options(strategy, self.options, self.strategy))
        return self

    def balancer(self):
        return self._built

    @field_validator("ratio")
    @classmethod
    def _not_nan(cls, ratio: float) -> float:
        if ratio != ratio:
            raise PydanticCustomError("nan", "ratio must be a number >= 0 or inf, not NaN", {})
        return ratio


class BalanceConfig(_Section):
    offline: OfflineBalanceConfig = Field(
        default_factory=OfflineBalanceConfig,
        description="Student side, before training: difficulty.",
    )
    online: OnlineBalanceConfig = Field(
        default_factory=OnlineBalanceConfig, description="Student side, every step: correctness."
    )


class CalibrationConfig(_Section):
    margin_shift: bool = Field(
        default=False,
        description="Outcome-guided margin shift (METHOD 4.1): move correct / incorrect rollouts' "
        "advantages so their return gap is at least delta.",
    )
    margin_mask: bool = Field(
        default=False,
        description="Greedy margin mask (METHOD 4.2): drop the rollouts that break the order instead. "
        "Exclusive with margin_shift.",
    )
    delta: float = Field(
        default=0.4, ge=0, description="Margin delta between correct and incorrect returns."
    )
    mode: MarginMode = Field(
        default="mean",
        description="mean = gap of the mean returns; minmax = worst correct minus best incorrect "
        "(the paper's strict margin).",
    )
    direction: Direction = Field(
        default="both", description="Which side the shift moves (both = half each)."
    )
    scope: Scope = Field(
        default="group", description="Calibrate within each prompt group, or over the whole batch."
    )
    min_retain_ratio: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Margin mask: keep more than max(1, floor(ratio * |side|)) rollouts of each side.",
    )
    strategy: str = Field(
        default="none",
        description="The calibrator (`uniopd list`): none, margin_shift, margin_mask or a plugin's "
        "name; margin_shift: true / margin_mask: true are shorthands for the first two.",
    )
    options: dict[str, Any] = Field(default={}, description="The calibrator's own options.")
    _built: Any = PrivateAttr(default=None)

    def enabled(self) -> bool:
        return self.strategy != "none"

    @field_validator("strategy")
    @classmethod
    def _registered(cls, name: str) -> str:
        return name if name == "none" else check_name(CALIBRATORS, name)

    @model_validator(mode="after")
    def _one_kind(self) -> CalibrationConfig:
        if self.margin_shift and self.margin_mask:
            raise conflict(
                "margin_shift and margin_mask are two alternative calibrations (METHOD 4.1 vs 4.2) "
                "and cannot both be on: pick one",
                "margin_shift",
                "margin_mask",
            )
        switched = (
            "margin_shift" if self.margin_shift else "margin_mask" if self.margin_mask else None
        )
        if switched and self.strategy not in ("none", switched):
            raise conflict(
                f"{switched}: true and strategy: {self.strategy} name two calibrations: pick one",
                switched,
                "strategy",
            )
        if switched:
            self.strategy = switched
        if self.strategy != "none":
            strategy = CALIBRATORS.get(self.strategy)
            self._built = strategy(self, build_options(strategy, self.options, self.strategy))
        elif self.options:
            raise conflict(
                "options are given but no calibration strategy is on", "options", "strategy"
            )
        return self

    def field_name(self) -> str:
        """The field that switched calibration on, for error messages."""
        return self.strategy if self.strategy in ("margin_shift", "margin_mask") else "strategy"

    def calibrator(self):
        return self._built
