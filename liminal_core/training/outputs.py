"""What a fine-tune leaves in its output directory besides the adapter: metrics, summary and a loss curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from liminal_core.jsonl import write_atomic

METRICS_FILE = "metrics.jsonl"


def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    """The per-step rows of ``out_dir/metrics.jsonl`` (none when the file does not exist)."""
    path = out_dir / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` by ``rows`` (a resumed run restarts the file from its checkpoint's rows, so
    the steps after the checkpoint are not written twice)."""
    write_atomic(out_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def append_metrics(handle: TextIO, row: dict[str, Any]) -> None:
    """Append one row to an open ``metrics.jsonl`` and flush it, so a reader sees every finished step."""
    handle.write(json.dumps(row) + "\n")
    handle.flush()


def plot_loss_curve(rows: list[dict[str, Any]], path: Path) -> None:
    """CE, KL and λ over the steps, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, [r["ce"] for r in rows], label="cross-entropy")
    ax.plot(steps, [r["kl"] for r in rows], label="KL (base ‖ student)")
    ax.plot(steps, [r["weighted_kl"] for r in rows], label="λ·T²·KL", linestyle=":")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["lambda"] for r in rows], color="grey", linestyle="--", label="λ")
    ax2.set_ylabel("λ")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
