"""Numeric precision of a run: what the student's weights and optimizer state are held in, what
the forward passes compute in, and what the teachers are loaded in.

    fp32         everything in float32 (the CPU default)
    bf16-mixed   float32 master weights and Adam state, bfloat16 autocast for forward passes,
                 teachers in bfloat16 (the CUDA default)
    fp16-mixed   as bf16-mixed in float16, with a dynamic loss scale against underflow
    bf16-pure    weights and Adam state in bfloat16: half the memory, but an update smaller than
                 half a weight's bf16 spacing rounds away (at lr 1e-6 most of them do), so the
                 curves move while the model barely learns. Only when asked for by name.

Autocast and the loss scaler are torch's own (torch.autocast, torch.amp.GradScaler).
"""

from __future__ import annotations

import contextlib
import math

import torch

MODES = ("fp32", "bf16-mixed", "fp16-mixed", "bf16-pure")


class PrecisionError(ValueError):
    pass


def resolve_mode(mode: str, device: torch.device) -> str:
    """`auto` -> bf16-mixed on CUDA, fp32 elsewhere; a mode the device cannot run is an error."""
    if mode == "auto":
        return "bf16-mixed" if device.type == "cuda" else "fp32"
    if mode not in MODES:
        raise PrecisionError(f"precision: {mode!r} is not one of {', '.join(MODES)} or auto")
    if mode.startswith("bf16") and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(
            f"precision: {mode} needs bfloat16, which {torch.cuda.get_device_name(device)} does "
            "not support; use fp16-mixed or fp32"
        )
    if mode == "fp16-mixed" and device.type != "cuda":
        raise PrecisionError(
            f"precision: fp16-mixed needs a CUDA device (device is {device.type}); use "
            "bf16-mixed or fp32"
        )
    return mode


class Precision:
    def __init__(self, mode: str, device: torch.device):
        self.mode = resolve_mode(mode, device)
        self.device = device
        half = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}.get(self.mode)
        self.compute_dtype = half  # autocast dtype; None = no autocast
        # the student's weights (and so Adam's state, which takes their dtype)
        self.student_dtype = torch.bfloat16 if self.mode == "bf16-pure" else torch.float32
        # teachers never train: half precision, no master copy
        self.teacher_dtype = {"fp32": torch.float32, "fp16-mixed": torch.float16}.get(
            self.mode, torch.bfloat16
        )
        self.scaler = (
            torch.amp.GradScaler(device.type) if self.mode == "fp16-mixed" else None
        )  # dynamic loss scale: fp16 gradients underflow without it

    def autocast(self):
        """Context for forward passes (never wrap backward in it)."""
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer) -> None:
        """Before clipping or reading gradients: they are in true units afterwards."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:  # skips the step when the scaled gradients overflowed, and adapts the scale
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def vanishing_lr(model: torch.nn.Module) -> tuple[float, float]:
    """(median |weight|, the smallest per-step change a bf16 weight of that size keeps).

    A bf16 number w in [2^e, 2^(e+1)) is spaced 2^(e-7) from its neighbours; a change under half
    that rounds back to w. Adam moves each weight by about lr per step, so below this lr the
    typical weight stops moving."""
    sample = torch.cat(
        [p.detach().flatten()[:: max(1, p.numel() // 4096)].float() for p in model.parameters()]
    ).abs()
    median = float(sample[sample > 0].median()) if (sample > 0).any() else 1.0
    return median, 2.0 ** (math.floor(math.log2(median)) - 8)
