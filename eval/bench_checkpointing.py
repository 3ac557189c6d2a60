"""Student training with and without activation checkpointing, from one config, in one run.

Each setting trains ``--steps`` steps in its own process (so each peak RSS is its own) from the same
StudentConfig JSON (``retrodistill train`` format; ``output`` is replaced). Reported per setting: peak RSS,
seconds per step (the trainer's ``train_runtime``; bi-encoder students), the mean training loss, and how
far the trained student's vectors of a few SciFact texts lie from the plain run's (the same weights, up to
float noise, is the expected answer).

    python eval/bench_checkpointing.py eval/runs/labelfree-scifact/student/config.json --steps 6 \
        --out eval/results/students/checkpointing
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TEXTS = [
    "0-dimensional biomaterials show inductive properties.",
    "Vitamin D deficiency is associated with a higher risk of respiratory infections.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
]

TRAIN = """
import json, resource, sys
from retrodistill.training import train_student
from retrodistill.training.config import StudentConfig
config = StudentConfig(**json.load(open(sys.argv[1])))
result = train_student(config, False)
log = json.load(open(result.output / "train_log.json"))["log_history"]
end = next(h for h in log if "train_runtime" in h)
print(json.dumps({"seconds": end["train_runtime"], "steps": result.steps, "mean_loss": end["train_loss"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(config: dict, checkpointing: bool, steps: int, folder: Path) -> dict:
    values = {k: v for k, v in config.items() if not k.startswith("colbert_") or config.get("student") == "colbert"}
    output = folder / ("checkpointed" if checkpointing else "plain")
    values.update(activation_checkpointing=checkpointing, max_steps=steps, save_steps=10 * steps, output=str(output))
    path = folder / f"{output.name}.json"
    path.write_text(json.dumps(values))
    done = subprocess.run([sys.executable, "-c", TRAIN, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return {"model": str(output / "model"), **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a StudentConfig JSON (or a work folder's student/config.json)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("eval/results/students/checkpointing"))
    args = parser.parse_args()
    config = json.loads(args.config.read_text())
    config = config.get("config", config)

    import numpy as np
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp:
        rows = {flag: run(config, flag, args.steps, Path(tmp)) for flag in (False, True)}
        vectors = {flag: SentenceTransformer(r.pop("model")).encode(TEXTS) for flag, r in rows.items()}
    drift = float(np.abs(vectors[True] - vectors[False]).max())
    plain, ckpt = rows[False], rows[True]
    summary = {
        "config": str(args.config),
        "steps": args.steps,
        "plain": plain,
        "checkpointed": ckpt,
        "peak_rss_ratio": ckpt["peak_rss_mib"] / plain["peak_rss_mib"],
        "time_ratio": ckpt["seconds"] / plain["seconds"],
        "max_vector_difference": drift,
    }
    lines = [
        f"# Activation checkpointing: `python eval/bench_checkpointing.py {args.config} --steps {args.steps}`",
        "",
        "| training | peak RSS MiB | s per step | mean loss |",
        "|---|---|---|---|",
    ]
    for name, r in (("plain", plain), ("activation_checkpointing", ckpt)):
        lines.append(f"| {name} | {r['peak_rss_mib']:.0f} | {r['seconds'] / r['steps']:.2f} | {r['mean_loss']:.4f} |")
    lines += [
        "",
        f"checkpointed / plain: peak RSS {summary['peak_rss_ratio']:.2f}x, time {summary['time_ratio']:.2f}x; "
        f"largest difference between the two students' vectors: {drift:.1e}",
    ]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
