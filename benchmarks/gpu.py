"""The GPU check: ``make gpu-check`` (= ``python -m benchmarks.gpu``) measures the figures only
a GPU gives and writes ``docs/benchmarks/gpu.md`` and ``gpu.json``. Without CUDA it says that it
needs a GPU and exits 0 without writing anything.

Each part runs in its own Python process with a time limit, so a part that runs long or hangs
cannot take the others' time; parts are launched while the budget (``--budget``, 540 s) lasts,
and one that would not fit is skipped and reported as such. In order, with what one H100 or
H200 is expected to take (each process spends about 10 s importing torch and starting CUDA):

=========  ===============================================================  ===========  =======
part       what                                                             expected     limit
=========  ===============================================================  ===========  =======
step       ``aape_base`` and ``vit_base`` (two processes): one pre-training  ~20 s each   120 s
           step at the ``audioset_base`` per-GPU batch (12 clips x 16
           clones) in bf16 autocast as fairseq2's trainer runs it, with
           gradient clipping, the AdamW step and the EMA update; 3 warm-up
           and 10 timed steps: median step time, clips/s,
           ``torch.cuda.max_memory_allocated``; AaPE / plain ratios; host
           syncs of a step that does not publish metrics
pretrain   ``python -m aape_plugin recipe run aape_pretrain`` on the demo    ~45 s        150 s
           data, 40 steps of ``aape_tiny`` in bf16 on the GPU: the public
           command end to end (fairseq2 start-up ~15 s)
extract    ``aape_extract`` of the demo audio with ``aape_base``: rank 0's  ~30 s        90 s
           peak device memory
reader     the training reader's clips/s with 1, 2, 4, ... parallel calls   ~60 s        120 s
           up to the machine's cores (``benchmarks.loader_scaling``), next
           to the clips/s one GPU consumes (from the step part)
ddp        the pretrain part under ``torchrun`` on 2 GPUs, only when there   ~60 s        150 s
           are 2 (NCCL start-up included)
compile    the step part again with the family's ``torch.compile``           ~1-2 min     150 s
           (inductor, block by block, as ``model.compile=true``): the        each
           first step includes compilation
=========  ===============================================================  ===========  =======

Why it fits one 10-minute call: with one GPU the parts are expected to take about 5 minutes
(6 with two); whatever happens, no part starts after the budget of 540 s is spent and every
part is stopped at its limit or at the budget, leaving a minute for the interpreter start and
writing the page. The most wanted figures (step, pretrain) come first, compilation last.

``--cpu`` runs the same code on the CPU with ``aape_tiny`` / ``vit_tiny``, 2 clips and a few
steps (what the tests run, to know the script works up to the device); it must be given
``--out``, so that CPU figures never land in ``docs/benchmarks/gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "benchmarks" / "gpu.md"


@dataclass
class Plan:
    """Sizes of a check: the GPU's, or the CPU smoke run's."""

    archs: tuple[str, str]
    """The AaPE arch and its plain-stem twin."""
    batch_size: int
    warmup: int
    steps: int
    reader_files: int
    reader_repeats: int
    pretrain_steps: int
    extract_folder: str = ""
    """Folder of ``assets/demo`` the extract part embeds ("" = all of it)."""
    compile_backend: str = "inductor"
    limits: dict[str, int] = field(default_factory=dict)
    """Seconds each part's process may run."""


GPU_PLAN = Plan(archs=("aape_base", "vit_base"), batch_size=12, warmup=3, steps=10, reader_files=96, reader_repeats=2,
                pretrain_steps=40, limits={"step": 120, "pretrain": 150, "extract": 90, "reader": 120, "ddp": 150, "compile": 150})

CPU_PLAN = Plan(archs=("aape_tiny", "vit_tiny"), batch_size=2, warmup=1, steps=1, reader_files=2, reader_repeats=1,
                pretrain_steps=2, extract_folder="drums", limits={"step": 300, "pretrain": 300, "extract": 300, "reader": 300, "ddp": 300, "compile": 300})


# --- Parts (each runs in a child process: python -m benchmarks.gpu --part NAME ...) -------------


def part_step(plan: Plan, arch: str, compiled: bool, device_type: str) -> dict[str, object]:
    """Pre-training steps of ``arch`` as the recipe runs them; times and peak memory."""
    import torch

    from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
    from aape_plugin.models.archs import ARCHS
    from aape_plugin.models.factory import create_aape_model
    from aape_plugin.models.parallelism import compile_aape

    device = torch.device(device_type)
    if device.type == "cuda":  # fairseq2's defaults (common.torch)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(0)
    model = create_aape_model(ARCHS[arch]()).to(device).train()
    if compiled:
        compile_aape(model, backend=plan.compile_backend)  # what model.compile=true applies
    config = model.config
    criterion = AapeCriterion(AapeCriterionConfig())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    x = torch.randn(plan.batch_size, 1, config.encoder.num_mel_bins, config.encoder.num_frames, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(nr: int) -> float:
        seeds = [nr * 1000 + i for i in range(plan.batch_size)]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = criterion(model(x, mask_seeds=seeds)).total
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 4.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_teacher(0.9999)
        return float(loss.detach())

    times, losses = [], []
    for nr in range(plan.warmup + plan.steps):
        if nr == plan.warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        start = time.perf_counter()
        losses.append(step(nr))
        sync()
        times.append(time.perf_counter() - start)

    timed = times[plan.warmup:]
    median = statistics.median(timed)
    syncs = count_host_syncs(model, criterion, x) if device.type == "cuda" else None
    return {
        "arch": arch, "compiled": compiled, "device": str(device), "batch_size": plan.batch_size,
        "num_clones": config.masking.num_clones, "first_step_seconds": times[0], "step_seconds": timed,
        "median_step_seconds": median, "clips_per_second": plan.batch_size / median,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "parameters": sum(p.numel() for p in model.parameters()), "losses": losses,
        "host_syncs_per_step": syncs,
    }


def count_host_syncs(model, criterion, x) -> int:  # type: ignore[no-untyped-def]
    """Host syncs of one pre-training step that does not publish metrics (the unit's forward,
    criterion, metrics and backward), counted by CUDA's sync debug mode. 0 is the target."""
    import warnings

    import torch
    from fairseq2.device import Device
    from fairseq2.metrics import MetricBag

    from aape_plugin.data.batch import AudioBatch
    from aape_plugin.models.ema import EmaConfig
    from aape_plugin.recipes.pretrain_unit import AapePretrainUnit

    unit = AapePretrainUnit(model, model, criterion, EmaConfig(num_steps=1000), 100.0, publish_every=100, num_steps=1000)
    bag = MetricBag(Device(x.device.type, x.device.index))
    unit.prepare_metric_bag(bag)
    batch = AudioBatch(features=x, num_frames=torch.full((x.size(0),), x.size(-1)), paths=[""] * x.size(0),
                       indices=torch.arange(x.size(0)))
    for step_nr in (1, 2):  # the first warms up (caches, allocator); the second is counted
        unit.set_step_nr(step_nr)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss, _ = unit.process_batch(batch, bag)
                loss.backward()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        model.zero_grad(set_to_none=True)
    return sum("synchroniz" in str(w.message) for w in caught)


def part_reader(plan: Plan) -> dict[str, object]:
    """The training reader with 1, 2, 4, ... parallel calls up to the cores (or 2 on CPU runs)."""
    import torch

    from benchmarks.loader import make_files
    from benchmarks.loader_scaling import call_counts, reader_rates

    torch.set_num_threads(1)
    limit = 2 if plan is CPU_PLAN else (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), plan.reader_files)
        rates = reader_rates(paths, call_counts(limit), plan.reader_repeats)
    return {"files": plan.reader_files, "clips_per_second": {str(k): r.clips_per_second for k, r in rates.items()},
            "cpu_seconds_per_clip": {str(k): r.cpu_seconds_per_clip for k, r in rates.items()}}


def part_pretrain(plan: Plan, out: Path, device_type: str, processes: int) -> dict[str, object]:
    """The public command on the demo data, on the GPU(s): it runs, learns and reports."""
    steps = plan.pretrain_steps
    config = [f"regime.num_steps={steps}", f"regime.checkpoint_every_n_steps={steps}", f"regime.validate_every_n_steps={steps}",
              f"regime.publish_metrics_every_n_steps={max(1, steps // 4)}", f"lr_scheduler.config.num_warmup_steps={max(1, steps // 8)}",
              "trainer.mixed_precision.mode=static", "trainer.mixed_precision.dtype=bfloat16", "common.cluster=none"]
    launcher = [sys.executable, "-m", "aape_plugin"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "aape_plugin"]
    command = [*launcher, "recipe", "run", "aape_pretrain", str(out), "--preset", "demo", "--no-rich", "--config", *config]
    env = {**os.environ, "FAIRSEQ2_EXTENSION_TRACE": "1"}
    if device_type == "cpu":
        env |= {"FAIRSEQ2_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics" / "train.jsonl").read_text().splitlines()] if (out / "metrics" / "train.jsonl").is_file() else []
    on_cpu = "training will be run on CPU" in proc.stderr
    return {
        "command": " ".join(command[command.index("recipe"):]), "processes": processes, "returncode": proc.returncode,
        "wall_seconds": wall, "device": "cpu" if on_cpu else device_type, "steps": [r["Step"] for r in rows],
        "losses": [r["Loss"] for r in rows], "clips_per_second": [r.get("Clips per Second") for r in rows],
        "stderr_tail": proc.stderr[-3000:] if proc.returncode else "",
    }


def part_extract(plan: Plan, out: Path, device_type: str) -> dict[str, object]:
    """``aape_extract`` of the demo audio with the AaPE arch (random weights): the peak device
    memory rank 0 needed to embed and collect every clip's frame embeddings."""
    command = [sys.executable, "-m", "aape_plugin", "recipe", "run", "aape_extract", str(out), "--no-rich", "--config",
               f"input_dir={REPO / 'assets' / 'demo' / plan.extract_folder}", "model.checkpoint=null", f"model.arch={plan.archs[0]}",
               f"dataset.stats_file={REPO / 'assets' / 'demo' / 'stats.json'}", "common.cluster=none"]
    env = {**os.environ, "FAIRSEQ2_EXTENSION_TRACE": "1"}
    if device_type == "cpu":
        env |= {"FAIRSEQ2_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    record = json.loads((out / "files.json").read_text()) if (out / "files.json").is_file() else {}
    return {"command": " ".join(command[command.index("recipe"):]), "returncode": proc.returncode,
            "wall_seconds": time.perf_counter() - start, "clips": len(record.get("paths", [])),
            "peak_device_memory_bytes": record.get("peak_device_memory_bytes"), "stderr_tail": proc.stderr[-3000:] if proc.returncode else ""}


# --- The orchestrator -----------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "failed", "timed out", "skipped"
    seconds: float
    result: dict[str, object] | None = None
    note: str = ""


def run_part(name: str, args: list[str], limit: float) -> Outcome:
    """``python -m benchmarks.gpu --part ...`` with a time limit; its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        start = time.perf_counter()
        # A session of its own: at the limit the part goes with everything it started (the
        # recipe's processes, torchrun's workers), so nothing keeps the GPU past the budget.
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.gpu", "--part", *args, "--result", str(result_file)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Outcome(name, "timed out", time.perf_counter() - start, note=f"stopped at its limit of {limit:.0f} s")
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not result_file.is_file():
            last = stderr.strip().splitlines()[-1][:300] if stderr.strip() else f"exit code {proc.returncode}"
            return Outcome(name, "failed", seconds, note=last)
        return Outcome(name, "ok", seconds, json.loads(result_file.read_text()))


def orchestrate(plan: Plan, device_type: str, budget: float, parts: list[str], extra: list[str]) -> list[Outcome]:
    start = time.perf_counter()
    plan_name = "cpu" if plan is CPU_PLAN else "gpu"
    num_gpus = 0
    if device_type == "cuda":
        import torch

        num_gpus = torch.cuda.device_count()

    jobs: list[tuple[str, list[str], int]] = []
    aape, plain = plan.archs
    if "step" in parts:
        jobs += [(f"step {arch}", ["step", "--plan", plan_name, "--arch", arch], plan.limits["step"]) for arch in (aape, plain)]
    if "pretrain" in parts:
        jobs.append(("pretrain", ["pretrain", "--plan", plan_name, "--processes", "1"], plan.limits["pretrain"]))
    if "extract" in parts:
        jobs.append(("extract", ["extract", "--plan", plan_name], plan.limits["extract"]))
    if "reader" in parts:
        jobs.append(("reader", ["reader", "--plan", plan_name], plan.limits["reader"]))
    if "ddp" in parts:
        jobs.append(("ddp", ["pretrain", "--plan", plan_name, "--processes", "2"], plan.limits["ddp"]))
    if "compile" in parts:
        jobs += [(f"compile {arch}", ["step", "--plan", plan_name, "--arch", arch, "--compile"], plan.limits["compile"]) for arch in (aape, plain)]

    outcomes = []
    for name, args, limit in jobs:
        left = budget - (time.perf_counter() - start)
        if name == "ddp" and device_type == "cuda" and num_gpus < 2:
            outcomes.append(Outcome(name, "skipped", 0.0, note=f"needs 2 GPUs, this machine has {num_gpus}"))
            continue
        if left < min(limit, 30):
            outcomes.append(Outcome(name, "skipped", 0.0, note=f"{left:.0f} s of the {budget:.0f} s budget left"))
            continue
        print(f"[gpu-check] {name} (limit {min(limit, left):.0f} s) ...", file=sys.stderr, flush=True)
        outcome = run_part(name, [*args, "--device", device_type, *extra], min(limit, left))
        print(f"[gpu-check] {name}: {outcome.status} in {outcome.seconds:.0f} s {outcome.note}", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    return outcomes


def summarise(plan: Plan, outcomes: list[Outcome], budget: float, total: float) -> dict[str, object]:
    """The JSON record: per part, and the figures the docs quote."""
    from benchmarks.common import machine

    by = {o.name: o for o in outcomes}
    aape, plain = plan.archs
    record: dict[str, object] = {"machine": machine(), "plan": asdict(plan), "budget_seconds": budget, "total_seconds": total,
                                 "parts": {o.name: {"status": o.status, "seconds": o.seconds, "note": o.note} for o in outcomes}}
    for kind, prefix in (("step", "step"), ("compile", "compile")):
        got = {arch: by[f"{prefix} {arch}"].result for arch in plan.archs if f"{prefix} {arch}" in by and by[f"{prefix} {arch}"].result}
        record[kind] = got
        if aape in got and plain in got:
            a, p = got[aape], got[plain]
            record[f"{kind}_ratios"] = {
                "time": a["median_step_seconds"] / p["median_step_seconds"],
                "memory": a["peak_memory_bytes"] / p["peak_memory_bytes"] if a["peak_memory_bytes"] and p["peak_memory_bytes"] else None,
            }
    for name in ("pretrain", "extract", "reader", "ddp"):
        if name in by and by[name].result:
            record[name] = by[name].result
    return record


def render(record: dict[str, object], command: str) -> str:
    """``gpu.md``."""
    from benchmarks.common import markdown_table

    m = record["machine"]
    plan = record["plan"]
    mib = 1024**2

    def fmt_bytes(value: object) -> str:
        return f"{value / mib:,.0f}" if isinstance(value, (int, float)) else "-"

    rows = []
    for kind, label in (("step", "eager"), ("compile", f"torch.compile ({plan['compile_backend']})")):
        for arch, r in record.get(kind, {}).items():
            syncs = r.get("host_syncs_per_step")
            rows.append([arch, label, f"{1000 * r['median_step_seconds']:.0f}", f"{r['clips_per_second']:.1f}",
                         fmt_bytes(r["peak_memory_bytes"]), f"{r['first_step_seconds']:.1f}", "-" if syncs is None else str(syncs)])
    ratio_rows = []
    for kind, label in (("step_ratios", "eager"), ("compile_ratios", "torch.compile")):
        if kind in record:
            r = record[kind]
            ratio_rows.append([label, f"{r['time']:.3f}", f"{r['memory']:.3f}" if r["memory"] else "-"])
    speedup = ""
    if record.get("step") and record.get("compile"):
        ups = [f"{arch} {record['step'][arch]['median_step_seconds'] / record['compile'][arch]['median_step_seconds']:.2f}x"
               for arch in record["compile"] if arch in record["step"]]
        speedup = f"Speed-up of torch.compile over eager: {', '.join(ups)}."

    part_rows = [[name, p["status"], f"{p['seconds']:.0f}", p["note"]] for name, p in record["parts"].items()]

    def run_lines(key: str) -> str:
        r = record.get(key)
        if not r:
            return f"Not run: {record['parts'].get(key, {}).get('note') or 'not asked for'}."
        losses = r["losses"]
        trend = f"loss {losses[0]:.3f} at step {r['steps'][0]} -> {losses[-1]:.3f} at step {r['steps'][-1]}" if losses else "no metrics written"
        speed = [c for c in r["clips_per_second"] if c]
        return (f"`{r['command']}` on {r['processes']} process(es), device {r['device']}: exit code {r['returncode']}, "
                f"{trend}, {speed[-1]:.0f} clips/s at the end, {r['wall_seconds']:.0f} s wall." if speed else
                f"`{r['command']}` on {r['processes']} process(es): exit code {r['returncode']}, {trend}.")

    reader = record.get("reader")
    reader_text = "Not run."
    if reader:
        rates = {int(k): v for k, v in reader["clips_per_second"].items()}
        consume = record.get("step", {}).get(plan["archs"][0], {}).get("clips_per_second")
        cpu = {int(k): v for k, v in reader["cpu_seconds_per_clip"].items()}
        reader_rows = [[str(k), f"{v:.0f}", f"{v / (k * rates[1]):.2f}", f"{1000 * cpu[k]:.1f}"] for k, v in rates.items()]
        reader_text = markdown_table(["parallel calls", "clips/s", "efficiency vs. linear", "CPU ms per clip"], reader_rows)
        if consume:
            enough = [k for k, v in rates.items() if v >= 1.5 * consume]
            reader_text += (f"\n\nOne GPU consumes {consume:.1f} clips/s of {plan['archs'][0]} (step part, eager). "
                            + (f"{min(enough)} parallel call(s) per GPU cover that with a margin of 1.5x." if enough else
                               "No measured count covers that with a margin of 1.5x: more cores per GPU are needed."))

    device_line = m.get("gpu", "no GPU (a CPU smoke run: not GPU figures)")
    return f"""# GPU check

Command: `{command}` (written by it; `make gpu-check`). Machine: {device_line}, {m['cpu']} with {m['cpu_count']} cores,
torch {m['torch']}; {m['date']}. Total {record['total_seconds']:.0f} s of a {record['budget_seconds']:.0f} s budget.

## Pre-training step at the audioset_base per-GPU batch

{plan['batch_size']} clips x their mask clones, bf16 autocast, gradient clipping, AdamW step and EMA update;
median of {plan['steps']} steps after {plan['warmup']} warm-up steps; peak memory is `torch.cuda.max_memory_allocated` over
the timed steps (parameters, gradients, AdamW state and activations).

{markdown_table(["arch", "mode", "step (ms)", "clips/s", "peak memory (MiB)", "first step (s)", "host syncs per step"], rows)}

Host syncs: the forward, criterion, metrics and backward of a step that does not publish metrics,
under `torch.cuda.set_sync_debug_mode` (the target is 0; CPU runs do not count them here, the
tests do with a `TorchFunctionMode`).

{markdown_table(["AaPE / plain", "time", "peak memory"], ratio_rows) if ratio_rows else "No ratios: a step part did not finish."}

{speedup}

## The public command on the GPU

{run_lines('pretrain')}

DDP: {run_lines('ddp')}

Extraction (`aape_extract` of the {record.get('extract', {}).get('clips', '?')} demo clips, {plan['archs'][0]}): peak device memory
of rank 0, which alone collects the rows: {fmt_bytes(record.get('extract', {}).get('peak_device_memory_bytes'))} MiB.

## Training reader vs. what one GPU consumes

{reader_text}

## Parts

{markdown_table(["part", "status", "seconds", "note"], part_rows)}
"""


# --- Entry point -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help=f"the page to write (default {DEFAULT_OUT.relative_to(REPO)}; the JSON goes next to it)")
    parser.add_argument("--cpu", action="store_true", help="the same code on the CPU with tiny archs and few steps (needs --out)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds after which no part starts and running ones stop")
    parser.add_argument("--parts", nargs="+", default=["step", "pretrain", "extract", "reader", "ddp", "compile"],
                        choices=["step", "pretrain", "extract", "reader", "ddp", "compile"])
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor)")
    # A part, run by the orchestrator in a child process.
    parser.add_argument("--part", choices=["step", "pretrain", "extract", "reader"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", choices=["gpu", "cpu"], default="gpu", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.part is not None:
        plan = CPU_PLAN if args.plan == "cpu" else GPU_PLAN
        if args.compile_backend:
            plan.compile_backend = args.compile_backend
        if args.part == "step":
            result = part_step(plan, args.arch, args.compile, args.device)
        elif args.part == "reader":
            result = part_reader(plan)
        elif args.part == "extract":
            with tempfile.TemporaryDirectory() as tmp:
                result = part_extract(plan, Path(tmp) / "emb", args.device)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result = part_pretrain(plan, Path(tmp) / "run", args.device, args.processes)
        args.result.write_text(json.dumps(result, indent=1))
        return 0

    import torch

    if args.cpu:
        if args.out is None:
            parser.error("--cpu needs --out: CPU figures must not replace the GPU page")
        plan, device_type = CPU_PLAN, "cpu"
    else:
        if not torch.cuda.is_available():
            print("The GPU check needs a CUDA GPU and this machine has none; nothing was written. "
                  "(`python -m benchmarks.gpu --cpu --out FILE` runs the same code on the CPU.)")
            return 0
        plan, device_type = GPU_PLAN, "cuda"
    if args.compile_backend:
        plan.compile_backend = args.compile_backend
        extra = ["--compile-backend", args.compile_backend]
    else:
        extra = []

    start = time.perf_counter()
    outcomes = orchestrate(plan, device_type, args.budget, args.parts, extra)
    record = summarise(plan, outcomes, args.budget, time.perf_counter() - start)

    out = args.out or DEFAULT_OUT
    shown = " ".join(["python -m benchmarks.gpu", *(["--cpu", "--out", str(args.out)] if args.cpu else []), *extra])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(record, shown))
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
