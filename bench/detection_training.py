"""Benchmark: DETR and Deformable DETR micro models trained on the generated shapes set for a
wall-time budget on this machine's CPU cores; validation COCO mAP after every epoch (mAP
against epochs and minutes), test mAP of the final model (pycocotools, the test split nothing
chose on); writes a table and a plot into BENCHMARKS.md.

    .venv/bin/python bench/detection_training.py [MODEL ...] [--minutes 30] [--seeds 0 1 2]

Each run trains on one thread (``deterministic``); on two cores run one process a model.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS as RESULTS_DIR, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "detection_training.json"
MODELS = ("detr_micro", "deformable_detr_micro")  # the default runs
OPTIONS = ("deformable_detr_micro_refine", "deformable_detr_micro_two_stage")  # the paper's options
GOAL = 0.5  # mAP@0.5 on the test split within the budget
SETTINGS = {"batch_size": 16, "learning_rate": 5e-4}
LR_DROP = 2 / 3  # the learning rate falls 10x after this share of the budget (paper: epoch 200/300)
EVAL_EVERY = 5  # epochs between validation mAPs
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "detection"


def run(name, seed, minutes):
    from edgezoo.detect import load_detection_data, save_detector
    from edgezoo.zoo import create_model
    from edgezoo.zoo.detr.train import DetectorTrainer, evaluate_detector
    from edgezoo.zoo.registry import registered_task
    from edgezoo.zoo.set_loss import DEFORMABLE_DETR_LOSS, DETR_LOSS
    from edgezoo.zoo.training import deterministic

    deterministic(seed)
    model = create_model(name)
    data = load_detection_data("shapes", model.input_shape[1:3], seed=0)  # one data set, fixed
    loss = DEFORMABLE_DETR_LOSS if registered_task(name) == "detection_sigmoid" else DETR_LOSS
    trainer = DetectorTrainer(model, batch_size=SETTINGS["batch_size"],
                              learning_rate=SETTINGS["learning_rate"], loss=loss)
    predict = lambda x: model.predict(x, batch_size=64, verbose=0)  # noqa: E731
    curve, trained, epoch, dropped = [], 0.0, 0, False
    while trained < minutes * 60:
        if not dropped and trained >= LR_DROP * minutes * 60:  # the paper's step decay, by time
            trainer.optimizer.learning_rate.assign(SETTINGS["learning_rate"] * 0.1)
            dropped = True
        start = time.perf_counter()
        mean_loss = trainer.epoch(data.train, seed=seed * 1000 + epoch)
        trained += time.perf_counter() - start
        epoch += 1
        if epoch % EVAL_EVERY and trained < minutes * 60:
            continue
        val = evaluate_detector(predict, data.val)
        curve.append({"epoch": epoch, "minutes": trained / 60, "loss": mean_loss,
                      "val_map": val["mAP"], "val_map50": val["mAP50"]})
        print(json.dumps({"model": name, "seed": seed, **curve[-1]}), flush=True)
    test = evaluate_detector(predict, data.test)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    save_detector(model, data, ARTIFACTS / f"{name}_seed{seed}.keras")
    return {"seed": seed, "epochs": epoch, "minutes": trained / 60, "curve": curve,
            "test_map": test["mAP"], "test_map50": test["mAP50"],
            "test_images": len(data.test.x), "cores": os.cpu_count(), **SETTINGS}


def _first(curve, level, key):
    """(epoch, minutes) of the first validation at or above ``level``, or None."""
    hit = next((c for c in curve if c["val_map50"] >= level), None)
    return None if hit is None else (hit["epoch"], hit[key])


def table(results):
    levels = (0.25, GOAL)
    lines = ["| model | seeds | epochs | training minutes | test mAP mean ± sd | test mAP@0.5 mean ± "
             f"sd (min) | mAP@0.5 ≥ {GOAL} every seed | "
             + " | ".join(f"first epoch (minute) at val mAP@0.5 ≥ {lv}" for lv in levels) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(levels)]
    for name, runs in sorted(results.items()):
        m = np.array([r["test_map"] for r in runs])
        m50 = np.array([r["test_map50"] for r in runs])
        sd = lambda a: a.std(ddof=1) if len(a) > 1 else 0.0  # noqa: E731
        firsts = []
        for level in levels:
            hits = [_first(r["curve"], level, "minutes") for r in runs]
            firsts.append(", ".join("—" if h is None else f"{h[0]} ({h[1]:.1f})" for h in hits))
        lines.append(f"| {name} | {', '.join(str(r['seed']) for r in runs)} | "
                     f"{', '.join(str(r['epochs']) for r in runs)} | "
                     f"{', '.join('%.1f' % r['minutes'] for r in runs)} | {m.mean():.3f} ± "
                     f"{sd(m):.3f} | {m50.mean():.3f} ± {sd(m50):.3f} ({m50.min():.3f}) | "
                     f"{'yes' if m50.min() >= GOAL else 'NO'} | " + " | ".join(firsts) + " |")
    return "\n".join(lines) + "\n"


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, runs in sorted(results.items()):
        for r in runs:
            epochs = [c["epoch"] for c in r["curve"]]
            axes[0].plot(epochs, [c["val_map50"] for c in r["curve"]], label=f"{name} seed {r['seed']}")
            axes[1].plot(epochs, [c["val_map"] for c in r["curve"]], label=f"{name} seed {r['seed']}")
    for ax, what in zip(axes, ("validation mAP@0.5", "validation mAP")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", choices=[[], *MODELS, *OPTIONS], default=[])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    from edgezoo.base import files

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in [] if args.report_only else (args.models or MODELS):
        runs = [r for r in results.get(name, []) if r["seed"] not in args.seeds]
        for seed in args.seeds:
            runs.append(run(name, seed, args.minutes))
            # re-read first: one process a model can run at once (one core each)
            results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            results[name] = sorted(runs, key=lambda r: r["seed"])
            files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    plot(results, RESULTS_DIR / "detection_training.png")
    write_section("detection-training", "## Detection transformers trained on shapes\n\n"
                  "`bench/detection_training.py`: `detr_micro` and `deformable_detr_micro` (and Deformable DETR's box-refinement and two-stage options where run) trained "
                  "from scratch on the generated shapes set (2,000 64x64 training images, 4 "
                  f"classes) with the set loss on every decoder layer, AdamW (lr "
                  f"{SETTINGS['learning_rate']}, batch {SETTINGS['batch_size']}, clip 0.1), for the "
                  "stated wall time of training on this machine's cores; COCO mAP from pycocotools "
                  "on the 500 test images (validation after each epoch, in the plot "
                  "`bench/results/detection_training.png`).\n\n" + table(results) + "\n")


if __name__ == "__main__":
    main()
