"""A stand-in for vLLM 0.30.0's offline API (`LLM`, `SamplingParams`), for tests on machines
where vLLM does not install (no GPU). Written from the source of vLLM 0.30.0 (the PyPI wheel
vllm-0.30.0-cp38-abi3-manylinux_2_28_x86_64.whl, commit ced6857af), not copied from it. What it
models, and where that was read:

- `LLM.__init__` (vllm/entrypoints/llm.py): its keyword-only signature; any other keyword goes to
  `EngineArgs` (vllm/engine/arg_utils.py), a dataclass, so a keyword it lacks is a TypeError.
  `dtype` is a ModelDType or a torch.dtype, `logprobs_mode` a LogprobsMode (vllm/config/model.py),
  `distributed_executor_backend` a DistributedExecutorBackend (vllm/config/parallel.py).
- The GPU the engine lands on (vllm/v1/executor/uniproc_executor.py): `external_launcher` reads
  RANK and LOCAL_RANK from the environment (a KeyError when unset) and sits on LOCAL_RANK's GPU;
  the plain executor takes the device's index, and "cuda" has none: GPU 0.
  `external_launcher` also sets VLLM_ENABLE_V1_MULTIPROCESSING=0 (ParallelConfig.__post_init__).
- Sleep and wake (LLM.sleep / wake_up -> vllm/v1/engine/llm_engine.py -> vllm/v1/engine/core.py
  -> vllm/v1/executor/abstract.py): `sleep(level >= 1)` pauses the scheduler, then, unless the
  executor `is_sleeping` already (a warning "Executor is already sleeping." and nothing else),
  moves the weights off the GPU (level 1: to the CPU; higher: discarded; without
  enable_sleep_mode nothing moves: the memory pools it frees are made only with it), drops the KV
  cache and sets sleeping_tags = {weights, kv_cache}. `wake_up(tags)` drops "scheduling" from the tags; with
  none left it only resumes; otherwise the executor, when not sleeping, warns "Executor is not
  sleeping." and does nothing; when a tag is not sleeping, warns and does nothing; else it wakes
  those tags (None: all), removes them, and clears `is_sleeping` when none is left. The scheduler
  resumes only when the executor is fully awake. A pause mode that is not a PauseMode is a
  ValueError, and "wait" is refused in-process.
- `SamplingParams` (vllm/sampling_params.py): a msgspec Struct with these field names and
  defaults, so an unknown keyword is a TypeError; `__post_init__` / `_verify_args`' ranges.
- `LLM.generate`'s signature; a list of SamplingParams must have the prompts' length
  (vllm/entrypoints/offline_utils.py); a token id outside the vocabulary is refused
  (vllm/v1/engine/input_processor.py).
- Outputs (vllm/outputs.py, vllm/logprobs.py): `RequestOutput.outputs[0]` with `token_ids` and
  `logprobs`, one {token id: Logprob} per generated token when `logprobs` is asked for.

Not modelled: the model's computation (tokens are drawn uniformly from config.json's vocabulary,
seeded per request, each with log-prob -1.0), the distributed set-up (the launcher's process group
is taken as given) and GPU memory. Two states real vLLM does not survive raise here instead:
`load_weights` while the weights sleep (vLLM would write into unmapped GPU memory) and `generate`
while the engine sleeps (its paused scheduler never runs the requests: the call would not return).

For the tests: CALLS records the calls in order, WARNINGS what vLLM would log as warnings, ENGINES
every LLM made.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

__version__ = "0.30.0"

CALLS: list[tuple] = []
WARNINGS: list[str] = []
ENGINES: list[LLM] = []

MODEL_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
LOGPROBS_MODES = ("raw_logits", "raw_logprobs", "processed_logits", "processed_logprobs")
EXECUTOR_BACKENDS = ("ray", "mp", "uni", "external_launcher")
PAUSE_MODES = ("abort", "wait", "keep")
SLEEP_TAGS = ("weights", "kv_cache")

# EngineArgs' fields in 0.30.0 beyond those LLM.__init__ names itself: the keywords **kwargs takes
ENGINE_ARGS_FIELDS = frozenset(
    """
    model enable_return_routed_experts return_sampling_mask model_weights served_model_name
    tokenizer hf_config_path runner convert skip_tokenizer_init enable_prompt_embeds tokenizer_mode
    trust_remote_code allowed_local_media_path allowed_media_domains download_dir
    safetensors_load_strategy safetensors_prefetch_num_threads safetensors_prefetch_block_size
    load_format config_format dtype kv_cache_dtype seed max_model_len cudagraph_capture_sizes
    max_cudagraph_capture_size ir_op_priority distributed_executor_backend pipeline_parallel_size
    master_addr master_port nnodes node_rank distributed_timeout_seconds
    cpu_distributed_timeout_seconds numa_bind numa_bind_nodes numa_bind_cpus device_ids
    tensor_parallel_size prefill_context_parallel_size decode_context_parallel_size
    dcp_comm_backend dcp_q_replicate dcp_kv_cache_interleave_size cp_kv_cache_interleave_size
    data_parallel_size data_parallel_rank data_parallel_start_rank data_parallel_size_local
    data_parallel_address data_parallel_rpc_port data_parallel_hybrid_lb
    data_parallel_external_lb data_parallel_multi_port_external_lb data_parallel_backend
    enable_expert_parallel enable_batch_sharded_sampling enable_ep_weight_filter moe_backend
    linear_backend sparse_indexer_topk_backend all2all_backend enable_elastic_ep
    elastic_ep_max_dp_size enable_dbo ubatch_size dbo_decode_token_threshold dp_sync_interval
    dbo_prefill_token_threshold disable_nccl_for_dp_synchronization eplb_config enable_eplb
    expert_placement_strategy _api_process_count _api_process_rank max_parallel_loading_workers
    block_size enable_prefix_caching prefix_caching_hash_algo prefix_cache_retention_interval
    disable_sliding_window disable_cascade_attn offload_backend cpu_offload_gb cpu_offload_params
    offload_group_size offload_num_in_group offload_prefetch_step offload_params
    gpu_memory_utilization kv_cache_memory_bytes max_num_batched_tokens max_num_scheduled_tokens
    long_prefill_token_threshold max_num_seqs max_num_queued_reqs max_num_queued_tokens
    max_logprobs logprobs_mode use_fp64_gumbel enable_trace_replay disable_log_stats
    aggregate_engine_logging revision code_revision hf_token hf_overrides model_class_overrides
    tokenizer_revision quantization quantization_config allow_deprecated_quantization
    enforce_eager disable_custom_all_reduce language_model_only limit_mm_per_prompt
    enable_mm_embeds interleave_mm_strings media_io_kwargs mm_processor_kwargs
    mm_processor_cache_gb mm_processor_cache_type mm_hasher_algorithm
    mm_shm_cache_max_object_size_mb mm_encoder_only mm_encoder_tp_mode mm_encoder_attn_backend
    mm_encoder_attn_dtype mm_encoder_fp8_scale_path mm_encoder_fp8_scale_save_path
    mm_encoder_fp8_scale_save_margin io_processor_plugin renderer_num_workers skip_mm_profiling
    video_pruning_rate video_pruning_method mm_tensor_ipc mm_processor_device
    mm_ipc_gpu_memory_gb mm_device_do_normalize enable_lora max_loras max_lora_rank
    default_mm_loras fully_sharded_loras max_cpu_loras lora_dtype lora_target_modules
    enable_tower_connector_lora specialize_active_lora enable_mixed_moe_lora_format
    enable_moe_shared_loras ray_workers_use_nsight num_gpu_blocks_override
    model_loader_extra_config ignore_patterns enable_chunked_prefill disable_chunked_mm_input
    scheduler_reserve_full_isl prefill_schedule_interval watermark
    disable_hybrid_kv_cache_manager structured_outputs_config reasoning_parser
    reasoning_parser_plugin speculative_config spec_method spec_model spec_tokens
    watermark_config diffusion_config show_hidden_metrics_for_version otlp_traces_endpoint
    collect_detailed_traces per_request_spec_decode_metrics kv_cache_metrics
    kv_cache_metrics_sample cudagraph_metrics enable_layerwise_nvtx_tracing enable_mfu_metrics
    enable_logging_iteration_details jit_monitor_mode jit_monitor_verbose
    enable_mm_processor_stats scheduling_policy scheduler_cls pooler_config compilation_config
    attention_config engram_config mamba_config kernel_config enable_flashinfer_autotune
    worker_cls worker_extension_cls profiler_config kv_transfer_config kv_events_config
    ec_transfer_config ec_manager_config reasoning_config generation_config enable_sleep_mode
    enable_cumem_allocator enable_nccl_comm_suspend override_generation_config model_impl
    attention_backend kv_cache_dtype_skip_layers mamba_cache_dtype mamba_ssm_cache_dtype
    mamba_block_size prefix_match_unit mamba_cache_mode enable_mamba_fine_grained_prefix_cache
    replayssm_buffer_len use_replayssm mamba_backend mamba_ssu_algorithm
    enable_mamba_cache_stochastic_rounding mamba_cache_philox_rounds additional_config
    use_tqdm_on_load pt_load_map_location logits_processors async_scheduling stream_interval
    kv_sharing_fast_prefill optimization_level performance_mode fault_tolerance_config
    enable_fault_tolerance kv_offloading_size kv_offloading_backend tokens_only shutdown_timeout
    weight_transfer_config fail_on_environ_validation gdn_prefill_backend kda_prefill_backend
    kda_decode_backend
    """.split()
)

_TORCH_DTYPES = {"half": torch.float16, "float16": torch.float16, "float": torch.float32}
_TORCH_DTYPES |= {"float32": torch.float32, "bfloat16": torch.bfloat16}


class VLLMValidationError(Exception):
    """vllm/exceptions.py: a request's invalid value (not a ValueError there either)."""


def _warn(message: str) -> None:
    WARNINGS.append(message)


# ------------------------------------------------------------------------------ sampling


# SamplingParams' fields and defaults (vllm/sampling_params.py, 0.30.0), private ones left out
_SAMPLING_DEFAULTS: dict[str, Any] = dict(
    n=1,
    presence_penalty=0.0,
    frequency_penalty=0.0,
    repetition_penalty=1.0,
    temperature=1.0,
    watermarking=True,
    top_p=1.0,
    top_k=0,
    min_p=0.0,
    seed=None,
    stop=None,
    stop_token_ids=None,
    ignore_eos=False,
    max_tokens=16,
    min_tokens=0,
    logprobs=None,
    prompt_logprobs=None,
    logprob_token_ids=None,
    flat_logprobs=False,
    detokenize=True,
    skip_special_tokens=True,
    spaces_between_special_tokens=True,
    include_stop_str_in_output=False,
    output_kind=None,
    stream_interval=None,
    skip_clone=False,
    output_text_buffer_length=0,
    structured_outputs=None,
    logit_bias=None,
    allowed_token_ids=None,
    extra_args=None,
    bad_words=None,
    skip_reading_prefix_cache=None,
    thinking_token_budget=None,
    repetition_detection=None,
    routed_experts_prompt_start=0,
    trace_decode_token_ids=None,
)


class SamplingParams:
    """Keywords only (the real Struct also takes its fields by position; nothing here does)."""

    def __init__(self, **kwargs: Any):
        for key in kwargs:
            if key not in _SAMPLING_DEFAULTS:
                raise TypeError(f"Unexpected keyword argument '{key}'")  # msgspec's wording
        for key, default in _SAMPLING_DEFAULTS.items():
            setattr(self, key, kwargs.get(key, default))
        if self.seed == -1:
            self.seed = None
        self.stop_token_ids = list(dict.fromkeys(self.stop_token_ids or []))
        if self.logprobs is True:
            self.logprobs = 1
        self._verify()
        if self.temperature < 1e-5:  # greedy
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0

    def _verify(self) -> None:
        checks = [
            (isinstance(self.n, int) and self.n >= 1, f"n must be at least 1, got {self.n}."),
            (self.repetition_penalty > 0.0, "repetition_penalty must be greater than zero"),
            (
                0.0 <= self.temperature <= 2.0,
                f"temperature must be in [0, 2], got {self.temperature}.",
            ),
            (0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}."),
            (
                isinstance(self.top_k, int) and self.top_k >= -1,
                f"top_k must be 0 (disable), or at least 1, got {self.top_k}.",
            ),
            (0.0 <= self.min_p <= 1.0, f"min_p must be in [0, 1], got {self.min_p}."),
            (
                self.max_tokens is None or self.max_tokens >= 1,
                f"max_tokens must be at least 1, got {self.max_tokens}.",
            ),
            (
                self.logprobs is None or self.logprobs == -1 or self.logprobs >= 0,
                f"logprobs must be non-negative or -1, got {self.logprobs}.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise VLLMValidationError(message)


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = True


# ------------------------------------------------------------------------------ the engine


class _Model:
    """The model runner's model: its weights, where they are, and `load_weights`."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.weights: dict[str, torch.Tensor] = {}
        self.on_gpu = True

    def load_weights(self, weights) -> set[str]:
        if not self.on_gpu:
            raise RuntimeError(
                "load_weights while the weights sleep: vLLM would write into unmapped GPU memory"
            )
        names = set()
        for name, tensor in weights:
            self.weights[name] = tensor.detach().to("cpu", self.dtype, copy=True)
            names.add(name)
        CALLS.append(("load_weights", sorted(names)))
        return names


class _Executor:
    """vllm/v1/executor/abstract.py's sleep state, over one worker."""

    def __init__(self, model: _Model, device_index: int, sleep_mode: bool):
        self.model, self.device_index = model, device_index
        self.sleep_mode = sleep_mode  # the cumem pools that sleep frees exist only with it
        self.sleeping_tags: set[str] = set()
        self.is_sleeping = False
        runner = SimpleNamespace(model=model)
        self.driver_worker = SimpleNamespace(worker=SimpleNamespace(model_runner=runner))

    def sleep(self, level: int) -> None:
        if self.is_sleeping:
            _warn("Executor is already sleeping.")
            return
        self.model.on_gpu = not self.sleep_mode
        if level != 1 and self.sleep_mode:  # level 2: weights discarded, not kept on the CPU
            for tensor in self.model.weights.values():
                tensor.fill_(float("nan"))
        self.sleeping_tags = set(SLEEP_TAGS)
        self.is_sleeping = True

    def wake_up(self, tags: list[str] | None) -> None:
        if not self.is_sleeping:
            _warn("Executor is not sleeping.")
            return
        for tag in tags or []:
            if tag not in self.sleeping_tags:
                _warn(f"Tag {tag} is not in sleeping tags {self.sleeping_tags}")
                return
        if tags is None or "weights" in tags:
            self.model.on_gpu = True
        self.sleeping_tags = set() if tags is None else self.sleeping_tags - set(tags)
        if not self.sleeping_tags:
            self.is_sleeping = False


class _LLMEngine:
    """vllm/v1/engine/llm_engine.py with its in-process engine core (vllm/v1/engine/core.py)."""

    def __init__(self, executor: _Executor):
        self.model_executor = executor  # "for v0 compatibility", in-process only
        self.scheduler_paused = False

    def sleep(self, level: int, mode: str) -> None:
        if mode not in PAUSE_MODES:
            raise ValueError(f"Invalid pause mode: {mode}")
        if mode == "wait":
            raise ValueError("'wait' mode can't be used in inproc-engine mode")
        self.scheduler_paused = True
        if level >= 1:
            self.model_executor.sleep(level)

    def wake_up(self, tags: list[str] | None) -> None:
        if tags is not None:
            tags = [t for t in tags if t != "scheduling"]
        if tags is None or tags:
            self.model_executor.wake_up(tags)
        if not self.model_executor.is_sleeping:
            self.scheduler_paused = False

    def is_sleeping(self) -> bool:
        return self.scheduler_paused or self.model_executor.is_sleeping


def _device_index(backend: str | None) -> int:
    if backend == "external_launcher":
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        int(os.environ["RANK"])  # env:// initialisation: a KeyError when the launcher set none
        return int(os.environ["LOCAL_RANK"])
    return 0  # UniProcExecutor: the index of device "cuda", which has none


class LLM:
    def __init__(
        self,
        model: str,
        *,
        runner: str = "auto",
        convert: str = "auto",
        tokenizer: str | None = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        allowed_local_media_path: str = "",
        allowed_media_domains: list[str] | None = None,
        tensor_parallel_size: int = 1,
        dtype: str | torch.dtype = "auto",
        quantization: str | None = None,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        chat_template: Path | str | None = None,
        seed: int = 0,
        gpu_memory_utilization: float = 0.92,
        cpu_offload_gb: float = 0,
        offload_group_size: int = 0,
        offload_num_in_group: int = 1,
        offload_prefetch_step: int = 1,
        offload_params: set[str] | None = None,
        enforce_eager: bool = False,
        enable_return_routed_experts: bool = False,
        return_sampling_mask: bool = False,
        disable_custom_all_reduce: bool = False,
        hf_token: bool | str | None = None,
        hf_overrides: Any = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        pooler_config: Any = None,
        structured_outputs_config: Any = None,
        profiler_config: Any = None,
        attention_config: Any = None,
        kv_cache_memory_bytes: int | None = None,
        compilation_config: Any = None,
        quantization_config: Any = None,
        logits_processors: list | None = None,
        spec_method: str | None = None,
        spec_model: str | None = None,
        spec_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        for key in kwargs:
            if key not in ENGINE_ARGS_FIELDS:
                raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{key}'")
        if not (isinstance(dtype, torch.dtype) or dtype in MODEL_DTYPES):
            raise ValueError(f"dtype: {dtype!r} is not one of {MODEL_DTYPES}")
        mode = kwargs.get("logprobs_mode", "raw_logprobs")
        if mode not in LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode: {mode!r} is not one of {LOGPROBS_MODES}")
        backend = kwargs.get("distributed_executor_backend")
        if backend is not None and backend not in EXECUTOR_BACKENDS:
            raise ValueError(
                f"distributed_executor_backend: {backend!r} is not one of {EXECUTOR_BACKENDS}"
            )
        # the HF config, as vLLM reads it
        config = json.loads((Path(model) / "config.json").read_text())
        self.vocab_size = int(config["vocab_size"])
        self.dtype = _TORCH_DTYPES[dtype] if isinstance(dtype, str) and dtype != "auto" else dtype
        self.kwargs = dict(kwargs, model=model, tokenizer=tokenizer, dtype=dtype, seed=seed)
        self.kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        self.env = {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
        device_index = _device_index(backend)
        weights_dtype = self.dtype if isinstance(self.dtype, torch.dtype) else torch.bfloat16
        sleep_mode = bool(kwargs.get("enable_sleep_mode", False))
        self.llm_engine = _LLMEngine(_Executor(_Model(weights_dtype), device_index, sleep_mode))
        self.seed = seed
        CALLS.append(("LLM", dict(self.kwargs)))
        ENGINES.append(self)

    @property
    def device_index(self) -> int:
        return self.llm_engine.model_executor.device_index

    def sleep(self, level: int = 1, mode: str = "abort"):
        CALLS.append(("sleep", level))
        self.llm_engine.sleep(level, mode)

    def wake_up(self, tags: list[str] | None = None):
        CALLS.append(("wake_up", None if tags is None else list(tags)))
        self.llm_engine.wake_up(tags)

    def generate(
        self,
        prompts,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        *,
        use_tqdm: Any = True,
        lora_request: Any = None,
        priority: list[int] | None = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        params = sampling_params or SamplingParams()
        params = list(params) if isinstance(params, (list, tuple)) else [params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError(
                f"The lengths of prompts ({len(prompts)}) and params ({len(params)}) must be the same."
            )
        if self.llm_engine.is_sleeping():
            raise RuntimeError("generate while the engine sleeps: vLLM would never return")
        CALLS.append(("generate", len(prompts)))
        return [self._complete(i, p, s) for i, (p, s) in enumerate(zip(prompts, params))]

    def _complete(self, i: int, prompt: dict, params: SamplingParams) -> RequestOutput:
        ids = list(prompt["prompt_token_ids"])
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"Token id {bad[0]} is out of vocabulary")
        g = torch.Generator().manual_seed(self.seed + i if params.seed is None else params.seed)
        drawn = torch.randint(0, self.vocab_size, (params.max_tokens,), generator=g).tolist()
        tokens: list[int] = []
        for t in drawn:
            tokens.append(t)
            if t in params.stop_token_ids:
                break
        logprobs = None if params.logprobs is None else [{t: Logprob(-1.0, 1)} for t in tokens]
        out = CompletionOutput(0, "", tokens, -float(len(tokens)), logprobs, "length")
        return RequestOutput(str(i), None, ids, [out])
