"""A small typed client for the HTTP API (used by the demo, the tests and the README's polling script)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
            )
        return response.json()

    def ready(self) -> bool:
        """True once ``/readyz`` answers 200; False while the server starts, is not ready or cannot be reached."""
        try:
            return self.http.get("/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def upload_file(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as handle:
            return self._json(self.http.post("/files", files={"file": (path.name, handle, "application/jsonl")}))

    def create_job(self, kind: str, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(self.http.post(f"/jobs/{kind}", json=body, headers=headers))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.post(f"/jobs/{job_id}/cancel"))

    def events(self, job_id: str, after: int | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self._json(self.http.get(f"/jobs/{job_id}/events", params=params))

    def wait(
        self, job_id: str, *, poll_s: float = 2.0, timeout_s: float = 3600.0, on_poll: Any = None
    ) -> dict[str, Any]:
        """Poll until the job ends; returns the final job object."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get_job(job_id)
            if on_poll is not None:
                on_poll(job)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def download_adapter(self, job_id: str, dest: Path) -> Path:
        response = self.http.get(f"/jobs/{job_id}/adapter")
        if response.status_code != 200:
            raise RuntimeError(f"adapter of {job_id}: {response.status_code} {response.text}")
        dest.write_bytes(response.content)
        return dest

    def download_artifact(self, job_id: str, name: str) -> bytes:
        response = self.http.get(f"/jobs/{job_id}/artifacts/{name}")
        if response.status_code != 200:
            raise RuntimeError(f"artifact {name} of {job_id}: {response.status_code} {response.text}")
        return response.content
