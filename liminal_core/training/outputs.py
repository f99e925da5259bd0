"""What a fine-tune leaves in its output directory besides the adapter: metrics, summary and a loss curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(out_dir: Path, last_step: int) -> None:
    """Keep only the rows up to ``last_step`` (a resumed run rewrites what came after its checkpoint)."""
    rows = [r for r in read_metrics(out_dir) if r["step"] <= last_step]
    (out_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))


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
