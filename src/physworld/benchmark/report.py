"""The benchmark's verdicts on the issue's targets, and its report as markdown tables."""

from __future__ import annotations

GPU_TARGET_FPS = 50_000


def targets(report: dict) -> list[dict]:
    """One row per target: what was measured, the goal, and met (True / False / None: not measured here)."""
    rows = []
    on_cpu = report["environment"]["device"] == "cpu"
    for phase, r in report.get("training", {}).items():
        rows.append(
            _row(
                f"CPU: Lightning overhead, {phase}",
                r["overhead_ratio"],
                "<= 1.10",
                on_cpu,
                lambda v: v <= 1.10,
            )
        )
    for phase, r in report.get("loading", {}).items():
        x = r["configured"].get("x_training")
        if x is not None:
            rows.append(
                _row(f"CPU: loader / training frames/s, {phase}", x, ">= 3", on_cpu, lambda v: v >= 3)
            )
    bf16 = report.get("fast_paths", {}).get("bf16-mixed", {})
    if "speedup" in bf16:
        rows.append(
            _row("CPU: bf16-mixed / fp32 frames/s", bf16["speedup"], ">= 1.4", on_cpu, lambda v: v >= 1.4)
        )
    gpu = report.get("gpu")
    if gpu:
        name = report["environment"].get("device_name", "")
        for key, r in gpu.items():
            if "frames_per_s" in r:
                rows.append(
                    _row(
                        f"GPU: frames/s, {key}",
                        r["frames_per_s"],
                        f">= {GPU_TARGET_FPS:,} on an H100",
                        "H100" in name,
                        lambda v: v >= GPU_TARGET_FPS,
                    )
                )
                rows.append(
                    {
                        "target": f"GPU: MFU, {key}",
                        "value": r.get("mfu"),
                        "goal": "reported",
                        "met": r.get("mfu") is not None,
                    }
                )
    else:
        rows.append(
            {
                "target": f"GPU: >= {GPU_TARGET_FPS:,} frames/s at batch 256, bf16, H100; MFU",
                "value": None,
                "goal": "measured on a CUDA machine",
                "met": None,
            }
        )
    mem = report.get("memory")
    if mem:
        seed = mem["seed_batch16_seq5"]["device_estimate_mb"]
        rows.append(_row("Memory: seed batch 16 x 5 frames (MB)", seed, "< 2048", True, lambda v: v < 2048))
        fit = mem["seq10_fit"]
        rows.append(
            {
                "target": f"Memory: largest batch of 10 frames in {fit['budget_mb'] / 1024:.0f} GB",
                "value": fit["largest_batch"],
                "goal": "report (the seed ran out at 32)",
                "met": None,
            }
        )
    return rows


def _row(target: str, value: float, goal: str, applies: bool, ok) -> dict:
    return {"target": target, "value": value, "goal": goal, "met": bool(ok(value)) if applies else None}


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"# physworld benchmark ({env['device']}{', ' + env['device_name'] if 'device_name' in env else ''})",
        "",
        f"torch {env['torch']}, lightning {env['lightning']}, {env['cpu_cores']} CPU cores, torch threads "
        f"{env['torch_threads']}, load average at start {_load(env['loadavg_start'])}, at end "
        f"{_load(env.get('loadavg_end'))}. Settings: {report['settings']}.",
        "",
    ]
    if "training" in report:
        lines += _table(
            "Training throughput, default model and batch (median of the interleaved repeats)",
            [
                "phase",
                "Lightning frames/s",
                "plain frames/s",
                "overhead (plain / Lightning)",
                "Lightning seq/s",
                "host reads / step",
                "load",
            ],
            [
                [
                    p,
                    _f(r["lightning"]["frames_per_s"]),
                    _f(r["plain"]["frames_per_s"]),
                    _f(r["overhead_ratio"], 3),
                    _f(r["lightning"]["sequences_per_s"]),
                    _f(r["host_reads"]["host_reads_per_step"]),
                    _f(r["lightning"]["loadavg_1min"]),
                ]
                for p, r in report["training"].items()
            ],
        )
    if "fast_paths" in report:
        rows = []
        for path, r in report["fast_paths"].items():
            if "skipped" in r:
                rows.append([path, "", "", "", r["skipped"]])
                continue
            note = f"plain loop: {_f(r['plain_speedup'], 2)}x" if "plain_speedup" in r else ""
            if "host_reads_on" in r:
                note = (
                    f"host reads/step {_f(r['host_reads_on']['host_reads_per_step'])} on, "
                    f"{_f(r['host_reads_off']['host_reads_per_step'])} off"
                )
            rows.append(
                [path, _f(r["on"]["frames_per_s"]), _f(r["off"]["frames_per_s"]), _f(r["speedup"], 2), note]
            )
        lines += _table(
            "Fast paths through Lightning (frames/s)", ["fast path", "on", "off", "speed-up", "note"], rows
        )
    if "token_cache" in report:
        rows = [
            [
                output,
                _f(r["on"]["frames_per_s"]),
                _f(r["off"]["frames_per_s"]),
                _f(r["speedup"], 2),
                _f(r["encode_once_s"], 2),
            ]
            for output, r in report["token_cache"].items()
        ]
        lines += _table(
            "Prediction phase on the token cache (frames/s through Lightning)",
            ["dynamics output", "token cache", "encoding every batch", "speed-up", "encoding once (s)"],
            rows,
        )
    if "loading" in report:
        rows = [
            [p, v, _f(m["frames_per_s"]), _f(m.get("x_training"), 1), _f(m["loadavg_1min"])]
            for p, variants in report["loading"].items()
            for v, m in variants.items()
        ]
        lines += _table(
            "Data loading alone", ["phase", "loader", "frames/s", "x training consumption", "load"], rows
        )
    if "imagination" in report:
        rows = [
            [k, m["starts"], m["horizon"], _f(m["latent_steps_per_s"]), _f(m["loadavg_1min"])]
            for k, m in report["imagination"].items()
        ]
        lines += _table("Imagination (no grad)", ["imaginer", "starts", "H", "latent steps/s", "load"], rows)
    if "scenes" in report:
        rows = [
            [k, m["sequences_per_call"], _f(m["sequences_per_s"]), _f(m["frames_per_s"])]
            for k, m in report["scenes"].items()
        ]
        lines += _table(
            "Scene generation (one process)", ["scene", "sequences a call", "seq/s", "frames/s"], rows
        )
    if "flops" in report:
        rows = [
            [p, f"{m['flops_per_frame'] / 1e9:.3f}", _f(m.get("achieved_tflops"), 4), _f(m.get("mfu"), 4)]
            for p, m in report["flops"].items()
        ]
        lines += _table(
            "FLOPs (matmul + conv, forward + backward)",
            ["phase", "GFLOP / frame", "achieved TFLOP/s", "MFU"],
            rows,
        )
    if "memory" in report:
        mem = report["memory"]
        rows = [
            [p["batch"], p["seq_len"], _f(p["step_mb"])]
            for p in [mem["seed_batch16_seq5"], *mem["seq10_points"]]
        ]
        fit = mem["seq10_fit"]
        lines += _table(
            f"Memory of a training step, {mem['phase']} ({mem['how']})", ["batch", "frames", "step MB"], rows
        )
        lines += [
            f"Seed batch 16 x 5 frames: about {_f(mem['seed_batch16_seq5']['device_estimate_mb'])} MB with the "
            f"weights. 10-frame windows: {_f(fit['mb_per_sequence'])} MB a sequence + {_f(fit['intercept_mb'])} MB; "
            f"largest batch in {fit['budget_mb'] / 1024:.1f} GB: {fit['largest_batch']}.",
            "",
        ]
    if "evaluation" in report:
        parts = ("reconstruction", "rollouts", "probes", "counterfactual", "total")
        rows = [
            [split, str(r["sequences"]), *[_f(r.get(p), 2) for p in parts], _f(r["loadavg_1min"])]
            for split, r in report["evaluation"].items()
        ]
        lines += _table(
            "Evaluation of pendulum, seconds per part (untrained prediction model, figures not drawn)",
            ["split", "sequences", *parts, "load"],
            rows,
        )
    if "gpu" in report:
        rows = [
            [k, _f(m["frames_per_s"]), _f(m.get("mfu"), 4), _f(m.get("device_peak_mb"))]
            for k, m in report["gpu"].items()
            if "frames_per_s" in m
        ]
        lines += _table("GPU target run", ["run", "frames/s", "MFU", "device peak MB"], rows)
    lines.append(
        f"Peak host RSS {_f(report.get('peak_host_rss_mb'))} MB"
        + (f", peak device memory {_f(report['peak_device_mb'])} MB." if "peak_device_mb" in report else ".")
    )
    lines += [""] + _table(
        "Targets",
        ["target", "value", "goal", "met"],
        [
            [
                t["target"],
                _f(t["value"], 3),
                t["goal"],
                {True: "yes", False: "NO", None: "not measured here"}[t["met"]],
            ]
            for t in report["targets"]
        ],
    )
    return "\n".join(lines)


def _table(title: str, header: list[str], rows: list[list]) -> list[str]:
    out = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _f(value, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _load(value) -> str:
    return "" if value is None else "/".join(f"{v:.2f}" for v in value)
