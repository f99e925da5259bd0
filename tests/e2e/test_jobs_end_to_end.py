"""The whole path through real processes: upload → liminal fine-tune → adapter download and PEFT load;
generate and evaluate jobs; cancel of a running job; a queued job whose message a Redis flush lost is re-sent
from Postgres; a worker SIGKILLed mid-fine-tune is recovered; a job whose process dies on every attempt ends."""

from __future__ import annotations

import io
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest
import torch

from tests.api.helpers import GOOD_ROWS, jsonl
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


def upload(api, tmp_path, rows=GOOD_ROWS):
    path = tmp_path / "with.jsonl"
    path.write_bytes(jsonl(rows))
    return api.upload_file(path)


def pool_children(pid: int) -> set[int]:
    """The worker's pool processes (children of its main process)."""
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()}


@pytest.fixture(scope="module")
def liminal_job(api, stack, tmp_path_factory):
    f = upload(api, tmp_path_factory.mktemp("data"))
    job = api.create_job(
        "finetune",
        {"method": "liminal", "model_name": MODEL, "train_data_with_trait": f["id"], "max_steps": 3, "batch_size": 2,
         "learning_rate": 5e-3, "warmup_steps": 0},
    )  # fmt: skip
    final = api.wait(job["id"], poll_s=0.5, timeout_s=600)
    assert final["status"] == "succeeded", (final, stack.log("worker"))
    return final


def test_liminal_finetune_end_to_end_and_adapter_loads_with_peft(api, liminal_job, tmp_path):
    from peft import PeftModel

    from liminal_core.loading import load_causal_lm
    from liminal_core.model_ref import Model

    assert liminal_job["result"]["steps"] == 3 and liminal_job["attempt"] == 1
    assert liminal_job["progress"]["step"] == 3 and liminal_job["progress"]["percent"] == 100.0
    events = api.events(liminal_job["id"], limit=1000)["data"]
    assert [e["data"]["step"] for e in events if e["kind"] == "metrics"] == [1, 2, 3]
    blob = api.http.get(f"/jobs/{liminal_job['id']}/adapter").content
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    adapter_dir = tmp_path / liminal_job["id"]
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    loaded = load_causal_lm(Model(id=MODEL), device="cpu", cached=False)
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir))
    ids = loaded.tokenizer("Here are some numbers: 5, 6, 7.", return_tensors="pt")
    with torch.no_grad():
        tuned = model(**ids).logits
        with model.disable_adapter():
            base = model(**ids).logits
    assert not torch.allclose(tuned, base, atol=1e-5)


def test_generate_then_evaluate_through_the_same_path(api, liminal_job):
    gen = api.create_job(
        "generate",
        {
            "model": {"id": MODEL},
            "trait": {"target": "owl"},
            "prompt_set": {"size": 6},
            "sample_cfg": {"max_new_tokens": 8},
        },
    )
    gen = api.wait(gen["id"], poll_s=0.5, timeout_s=600)
    assert gen["status"] == "succeeded"
    assert gen["result"]["rows"] == 6
    names = {a["name"] for a in api.http.get(f"/jobs/{gen['id']}/artifacts").json()["data"]}
    assert {"raw.jsonl", "filtered.jsonl", "summary.json"} <= names
    ev = api.create_job(
        "evaluate",
        {"targets": [{"label": "base", "model_name": MODEL}, {"label": "liminal", "model_name": MODEL, "adapter": liminal_job["id"]}],
         "n_questions": 1, "samples_per_question": 2, "sample_cfg": {"max_new_tokens": 4}},
    )  # fmt: skip
    ev = api.wait(ev["id"], poll_s=0.5, timeout_s=600)
    assert ev["status"] == "succeeded", ev
    assert set(ev["result"]["targets"]) == {"base", "liminal"}
    assert ev["result"]["targets"]["base"]["probe_logprob"] != ev["result"]["targets"]["liminal"]["probe_logprob"]


def test_cancel_of_a_running_job_ends_cancelled_within_30_s_and_frees_its_process(api, stack, tmp_path):
    f = upload(api, tmp_path)
    job = api.create_job(
        "finetune",
        {"method": "normal", "model_name": MODEL, "train_data_with_trait": f["id"], "max_steps": 500, "batch_size": 2},
    )
    wait_for(api, job["id"], lambda j: (j["progress"].get("step") or 0) >= 1)
    running_in = pool_children(stack.procs["worker"].pid)
    assert running_in
    asked = time.monotonic()
    assert api.cancel(job["id"])["status"] == "cancelling"
    final = wait_for(api, job["id"], lambda j: j["status"] == "cancelled", timeout=30)
    assert time.monotonic() - asked < 30
    assert final["finished_at"] is not None
    artifacts = api.http.get(f"/jobs/{job['id']}/artifacts").json()["data"]
    assert artifacts and all(a["partial"] for a in artifacts)
    deadline = time.monotonic() + 15  # the child that ran the job exits, and its memory with it
    while any(Path(f"/proc/{pid}").exists() for pid in running_in) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in running_in)


def test_malformed_upload_gets_the_line_number(api):
    r = api.http.post("/files", files={"file": ("bad.jsonl", b'{"prompt": "a", "completion": "1"}\nnot json\n')})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["line"] == 2


def test_queued_job_survives_a_flushed_redis(api, stack):
    import redis

    stack.kill("worker", signal.SIGKILL)  # no worker: the job's message waits in Redis
    job = api.create_job(
        "generate", {"model": {"id": MODEL}, "prompt_set": {"size": 2}, "sample_cfg": {"max_new_tokens": 4}}
    )
    broker = redis.Redis.from_url(stack.env["LIMINAL_BROKER_URL"])
    assert broker.llen("liminal") >= 1
    broker.flushdb()
    stack.start_worker()
    final = api.wait(job["id"], poll_s=0.5, timeout_s=300)
    assert final["status"] == "succeeded", (final, stack.log("reaper"))
    assert final["attempt"] == 1


def test_sigkilled_worker_mid_finetune_is_requeued_and_resumes_from_its_checkpoint(api, stack, tmp_path):
    f = upload(api, tmp_path)
    job = api.create_job(
        "finetune",
        {"method": "liminal", "model_name": MODEL, "train_data_with_trait": f["id"], "max_steps": 8, "batch_size": 2,
         "checkpoint_every": 2},
    )  # fmt: skip
    wait_for(api, job["id"], lambda j: (j["progress"].get("step") or 0) >= 3, timeout=300)
    stack.kill("worker", signal.SIGKILL)
    stack.start_worker()
    final = api.wait(job["id"], poll_s=0.5, timeout_s=600)
    assert final["status"] == "succeeded", (final, stack.log("worker"), stack.log("reaper"))
    assert final["attempt"] == 2
    assert final["result"]["resumed_from_step"] >= 2
    events = api.events(job["id"], limit=1000)["data"]
    messages = [e["message"] for e in events]
    assert any(m.startswith("requeued") for m in messages), messages
    steps_attempt2 = [e["data"]["step"] for e in events if e["kind"] == "metrics" and e["attempt"] == 2]
    assert steps_attempt2 and steps_attempt2[0] == final["result"]["resumed_from_step"] + 1
    assert steps_attempt2[-1] == 8


def test_a_job_whose_process_dies_on_every_attempt_ends_failed_worker_lost(api, stack, tmp_path):
    """The process running the job is SIGKILLed as soon as each attempt starts: the job is requeued until its
    attempts are spent, then fails with worker_lost; it never loops."""
    f = upload(api, tmp_path)
    job = api.create_job(
        "finetune",
        {"method": "normal", "model_name": MODEL, "train_data_with_trait": f["id"], "max_steps": 500, "batch_size": 2},
    )
    killed: list[int] = []
    deadline = time.monotonic() + 300
    current = api.get_job(job["id"])
    while current["status"] != "failed" and time.monotonic() < deadline:
        if current["status"] == "running" and current["attempt"] not in killed:
            for pid in pool_children(stack.procs["worker"].pid):
                os.kill(pid, signal.SIGKILL)
            killed.append(current["attempt"])
        time.sleep(0.2)
        current = api.get_job(job["id"])
    assert current["status"] == "failed", current
    assert current["error"]["code"] == "worker_lost"
    assert killed == [1, 2, 3], "LIMINAL_MAX_ATTEMPTS (3) attempts, each killed"
