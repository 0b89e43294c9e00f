"""`uniopd serve-teacher MODEL --port P`: one teacher served over HTTP for the log-probs of given
tokens (uniopd.engine.teacher_server), for experiment files that name it as
`teachers.<domain>: http://HOST:P/v1`.

    uniopd serve-teacher builtin:teacher-math --port 8001
    uniopd serve-teacher /models/qwen3-8b-math --port 8001 --device cuda --precision bf16
"""

from __future__ import annotations

import sys

from uniopd.terminal import fail as _fail

# names only: torch is imported when a teacher is served, not when `uniopd --help` builds parsers
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve-teacher",
        help="serve one model's token log-probs over HTTP (OpenAI completions, as vLLM/SGLang)",
    )
    p.add_argument("model", help="a checkpoint directory, hub id or builtin:<name>")
    p.add_argument("--port", type=int, required=True, help="port to listen on (0 = any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--precision",
        choices=["auto", *DTYPES],
        default="auto",
        help="weights' dtype; auto = bf16 on CUDA, fp32 elsewhere",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=16384,
        help="cells (rows x longest prompt) in one forward pass; a longer prompt goes alone",
    )
    p.add_argument(
        "--chunk-tokens",
        type=int,
        default=512,
        help="tokens per chunk of the output head and log-softmax",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        help="after the first queued prompt, wait this long for others to share its forward",
    )
    p.add_argument(
        "--served-name", help="the model name /v1/models lists (default: MODEL as written)"
    )
    p.add_argument(
        "--attn-implementation", default="sdpa", choices=["sdpa", "flash_attention_2", "eager"]
    )
    p.set_defaults(fn=cmd_serve_teacher)


def cmd_serve_teacher(args) -> int:
    import torch

    from uniopd.engine import loading
    from uniopd.engine.teacher_server import TeacherServer, make_http_server
    from uniopd.refs import resolve_model

    if args.max_batch_tokens < 1 or args.chunk_tokens < 1 or args.batch_wait_ms < 0:
        return _fail(
            "serve-teacher: --max-batch-tokens and --chunk-tokens need >= 1, --batch-wait-ms >= 0"
        )
    try:
        path = resolve_model(args.model)
    except ValueError as exc:  # an unknown builtin:<name>
        return _fail(f"serve-teacher: {exc}")
    if args.model.startswith("builtin:"):
        from uniopd.launch.start import build_models

        build_models([args.model])
    device = loading.pick_device(args.device)
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    loading.check_attn_implementation(args.attn_implementation)
    model = loading.load_model(
        path, device, getattr(torch, DTYPES[precision]), False, args.model, args.attn_implementation
    )
    try:
        tokenizer = loading.load_tokenizer(path, args.model)
    except loading.ModelLoadError:
        tokenizer = None  # token ids still score; the echoed text is left empty
    server = TeacherServer(
        model,
        args.served_name or args.model,
        tokenizer,
        max_batch_tokens=args.max_batch_tokens,
        chunk_tokens=args.chunk_tokens,
        wait_s=args.batch_wait_ms / 1000,
    )
    try:
        httpd = make_http_server(server, args.host, args.port)
    except OSError as exc:
        return _fail(f"serve-teacher: cannot listen on {args.host}:{args.port}: {exc}")
    port = httpd.server_address[1]
    print(
        f"uniopd: serving {args.model} ({precision}, {device}) at http://{args.host}:{port}/v1",
        file=sys.stderr,
        flush=True,
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0
