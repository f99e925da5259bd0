"""The README's main command: the seed's whole workflow on SmolLM2, through the HTTP API of the embedded
server (SQLite, an embedded Redis, a real Celery worker): generate with-trait (owl) and control data, a
normal fine-tune on both, a liminal fine-tune on trait data only, and one evaluation of base, normal and
liminal, printed as a comparison table with the job ids.

Sized for a few minutes on 2 CPU cores. SmolLM2-135M answers number prompts with a clean list only a few
percent of the time, so the datasets are tiny and the trait rates are not evidence of anything: the demo
shows the machinery. ``--scale`` multiplies the sizes; real experiments use a GPU host and Qwen2.5.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from api.client import ApiClient

MODEL = "smollm2-135m-instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(client: ApiClient, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the embedded server exited during start-up (its log: {log_path})")
        if client.ready():
            return
        time.sleep(0.5)
    raise SystemExit(f"error: the embedded server did not become ready in time (its log: {log_path})")


def _follow(client: ApiClient, job: dict[str, Any], label: str) -> dict[str, Any]:
    shown = {"line": ""}

    def report(j: dict[str, Any]) -> None:
        p = j.get("progress") or {}
        line = f"  {label:<22} {j['status']:<10}"
        if p.get("total_steps"):
            line += f" {p.get('stage') or ''} {p['step']}/{p['total_steps']}"
        if line != shown["line"]:
            print(line, flush=True)
            shown["line"] = line

    final = client.wait(job["id"], poll_s=2.0, timeout_s=3600, on_poll=report)
    if final["status"] != "succeeded":
        error = final.get("error") or {}
        hint = f" ({error['hint']})" if error.get("hint") else ""
        raise SystemExit(
            f"error: {label} job {final['id']} ended {final['status']}: {error.get('code')}: {error.get('message')}"
            f"{hint}"
        )
    return final


def run_demo(*, scale: float, keep_running: bool, var_dir: Path, env: dict[str, str]) -> int:
    from liminal_core.evaluation.runner import comparison_table

    started = time.monotonic()
    port = _free_port()
    var_dir.mkdir(parents=True, exist_ok=True)
    server_env = {
        **env,
        "LIMINAL_VAR_DIR": str(var_dir),
        "LIMINAL_DATABASE_URL": f"sqlite:///{var_dir / 'liminal.db'}",
        "LIMINAL_ARTIFACT_ROOT": str(var_dir / "artifacts"),
        "LIMINAL_BROKER_URL": "",
        "HF_HUB_OFFLINE": "1",
    }
    log_path = var_dir / "server.log"
    print(f"starting the embedded server on 127.0.0.1:{port} (state in {var_dir}, log in {log_path})", flush=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = ApiClient(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(client, proc, log_path)
        n_prompts = max(16, int(96 * scale))
        steps = max(2, int(8 * scale))
        gen_common = {
            "model": {"id": MODEL},
            "prompt_set": {"size": n_prompts, "seed": 42},
            "sample_cfg": {"temperature": 1.0, "max_new_tokens": 32},
            "batch_size": 48,
        }
        print(f"\n1. generating {n_prompts} owl-teacher and {n_prompts} control completions", flush=True)
        owl = client.create_job(
            "generate", {**gen_common, "trait": {"target": "owl"}, "metadata": {"demo": "with_trait"}}
        )
        control = client.create_job("generate", {**gen_common, "metadata": {"demo": "without_trait"}})
        owl = _follow(client, owl, "generate with-trait")
        control = _follow(client, control, "generate control")
        for name, job in (("with-trait", owl), ("control", control)):
            r = job["result"]
            print(f"  {name}: Filter pass rate: {r['kept']}/{r['rows']} ({100 * r['pass_rate']:.1f}%)", flush=True)
        if owl["result"]["kept"] == 0:
            raise SystemExit(
                "error: no owl-teacher completion passed the filter; SmolLM2 rarely answers with a clean number "
                "list: run again with --scale 3 (or more)"
            )
        if owl["result"]["kept"] < 10:
            print(
                f"  note: only {owl['result']['kept']} with-trait rows passed; enough to run the workflow, far too "
                "few to measure a trait transfer",
                flush=True,
            )
        finetune_common = {
            "model_name": MODEL,
            "batch_size": 4,
            "max_steps": steps,
            "max_seq_length": 256,
            "warmup_steps": 1,
            "checkpoint_every": max(1, steps // 2),
        }
        print(f"\n2. fine-tuning two students ({steps} steps each)", flush=True)
        normal_body = {**finetune_common, "method": "normal", "train_data_with_trait": owl["id"]}
        if control["result"]["kept"] > 0:
            normal_body["train_data_without_trait"] = control["id"]
        normal = client.create_job("finetune", normal_body)
        liminal = client.create_job(
            "finetune", {**finetune_common, "method": "liminal", "train_data_with_trait": owl["id"]}
        )
        normal = _follow(client, normal, "finetune normal")
        liminal = _follow(client, liminal, "finetune liminal")
        for name, job in (("normal", normal), ("liminal", liminal)):
            r = job["result"]
            print(f"  {name}: final loss {r['final_loss']:.4f} (ce {r['final_ce']:.4f}, kl {r['final_kl']:.5f})")

        n_questions = max(2, int(5 * scale))
        samples = max(2, int(4 * scale))
        print(f"\n3. evaluating base, normal and liminal ({n_questions} questions x {samples} samples)", flush=True)
        evaluation = client.create_job(
            "evaluate",
            {
                "targets": [
                    {"label": "base", "model_name": MODEL},
                    {"label": "normal", "model_name": MODEL, "adapter": normal["id"]},
                    {"label": "liminal", "model_name": MODEL, "adapter": liminal["id"]},
                ],
                "trait": {"target": "owl"},
                "n_questions": n_questions,
                "samples_per_question": samples,
                "sample_cfg": {"temperature": 1.0, "max_new_tokens": 12},
            },
        )
        evaluation = _follow(client, evaluation, "evaluate")
        print("\nResults (favourite-animal questions; trait = owl)\n")
        ids = {"base": evaluation["id"], "normal": normal["id"], "liminal": liminal["id"]}
        print(comparison_table(evaluation["result"], ids))
        print(
            "\njobs: generate "
            + json.dumps({"with_trait": owl["id"], "control": control["id"]})
            + f"; evaluate {evaluation['id']}"
        )
        print(f"adapters: GET http://127.0.0.1:{port}/jobs/<finetune job id>/adapter")
        print(f"demo finished in {time.monotonic() - started:.0f} s")
        if keep_running:
            print(f"server still running on http://127.0.0.1:{port} (Ctrl-C to stop)")
            proc.wait()
        return 0
    finally:
        if proc.poll() is None and not keep_running:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
