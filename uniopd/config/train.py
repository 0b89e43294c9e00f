"""The `train` section of an experiment file: the optimizer and its schedule, the PPO update, and
how long a run trains (a number of steps, or passes over the data counted at start)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_serializer, model_validator

from uniopd.config.section import _Section, conflict

_Beta = Annotated[float, Field(ge=0, lt=1)]


class TrainConfig(_Section):
    steps: int = Field(
        default=50,
        ge=1,
        description="Optimizer steps, one rollout batch each. Exclusive with data_epochs.",
    )
    data_epochs: int | None = Field(
        default=None,
        ge=1,
        description="Passes over the training data instead of a step count (the release's "
        "--num-epoch): steps = data_epochs x (training items // rollout.prompts_per_batch), at "
        "least one per pass, counted once the training set is known (after max_prompt_tokens and "
        "offline balancing; a pre-balanced file's copies count). Exclusive with steps.",
    )
    lr: float = Field(default=1e-6, gt=0, description="Peak learning rate (AdamW).")
    warmup_steps: int = Field(default=5, ge=0, description="Linear warm-up steps from 0 to lr.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant", description="Learning-rate shape after warm-up."
    )
    betas: tuple[_Beta, _Beta] = Field(default=(0.9, 0.98), description="AdamW (beta1, beta2).")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW decoupled weight decay.")
    decay_norms_and_biases: bool = Field(
        default=True,
        description="true: weight_decay on every trainable parameter (uniopd's behaviour so "
        "far, kept as the default so earlier runs reproduce). false: the Uni-OPD release's "
        "(Megatron's) rule: weight matrices only, no decay on biases and norm weights (1-D "
        "parameters and names containing 'norm').",
    )
    epochs: int = Field(
        default=1,
        ge=1,
        description="Optimizer passes over each rollout batch (PPO epochs); with 1 the clip is inactive.",
    )
    micro_batch_size: int = Field(
        default=0,
        ge=0,
        description="Rollouts per forward/backward pass, gradients accumulated (0 = whole batch).",
    )
    logits_micro_batch_size: int = Field(
        default=16,
        ge=1,
        description="Rollouts per forward/backward pass when an objective needs the teacher's full "
        "logits (rows x T x V floats each): the smaller of this and micro_batch_size, so the "
        "whole batch's teacher logits never exist at once.",
    )
    max_tokens_per_micro_batch: int = Field(
        default=0,
        ge=0,
        description="Token budget of a micro-batch (0 = off): rows sorted by length are packed so "
        "that rows x (longest prompt + longest response) stays within it, each micro-batch "
        "trimmed to its own width; micro_batch_size, when set, still caps the rows.",
    )
    logprob_chunk_tokens: int = Field(
        default=512,
        ge=1,
        description="Response tokens per chunk of the output head and log-softmax: log-probs "
        "never build the whole float32 [rows, T, vocab] matrix (recomputed in backward).",
    )
    fsdp: bool = Field(
        default=False,
        description="Shard the student's weights, gradients and Adam state over the data-parallel "
        "processes (FSDP2), for students that do not fit one device; needs --nproc >= 2. "
        "Checkpoints stay plain HF folders.",
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute the student's layer activations in the backward pass instead of "
        "keeping them: less memory for long responses, about a third more update compute.",
    )
    old_logp: Literal["trainer", "rollout"] = Field(
        default="trainer",
        description="Where pi_old (the PPO ratio's denominator, and OPD's student log-prob) comes "
        "from: trainer = the student's own log-probs before the update (exact; with one "
        "micro-batch read off the first epoch's forward pass, else a no-grad pass); rollout = "
        "the rollout engine's log-probs of the sampled tokens, one forward pass fewer per "
        "micro-batch and step when there are several, off by the rollout/trainer mismatch (rollout/logp_mismatch_*, still logged "
        "from the first epoch's pass). An engine that gives no log-probs falls back to trainer.",
    )
    clip_low: float = Field(
        default=0.2, ge=0, lt=1, description="PPO clip below: the ratio is kept >= 1 - clip_low."
    )
    clip_high: float = Field(
        default=0.28, ge=0, description="PPO clip above: the ratio is kept <= 1 + clip_high."
    )
    logp_gap_mask: float = Field(
        default=10.0,
        gt=0,
        description="Threshold c: tokens where |log pi_student - log pi_teacher| >= c get zero loss.",
    )
    max_grad_norm: float = Field(
        default=1.0, ge=0, description="Clip the global gradient norm to this (0 = off)."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_length(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("data_epochs") is None or "steps" not in data:
            return data
        if data["steps"] is None:  # a run's config.yaml: steps are counted at start
            return {k: v for k, v in data.items() if k != "steps"}
        raise conflict(
            f"steps = {data['steps']} and data_epochs = {data['data_epochs']} both say how long "
            "to train: keep one (on the command line, train.data_epochs=null with train.steps=N)",
            "steps",
            "data_epochs",
        )

    @field_serializer("steps")
    def _steps_when_counted(self, steps: int) -> int | None:
        # with data_epochs the step count is the data's, known only at start: none is saved
        return None if self.data_epochs is not None else steps

    def length(self) -> str:
        """How long the run trains, in the file's words: "50 steps" or "10 passes over the data"."""
        if self.data_epochs is None:
            return f"{self.steps} steps"
        return f"{self.data_epochs} pass{'es' if self.data_epochs > 1 else ''} over the data"
