"""``edgezoo quantum train TASK`` and ``edgezoo quantum export MODEL``.

Imported by ``edgezoo.cli`` inside ``build_parser``; TensorFlow Quantum itself is
imported only when a quantum command runs.
"""
import json


def _cmd_train(args):
    from pathlib import Path

    from edgezoo.quantum.saving import save_model
    from edgezoo.quantum.tasks import get_task
    from edgezoo.quantum.training import train_task

    from edgezoo.base.files import check_folder

    check_folder(args.out)
    task = get_task(args.task, seed=args.seed)
    model, report = train_task(task, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                               learning_rate=args.lr, differentiator=args.differentiator,
                               repetitions=args.repetitions, noise=args.noise, baseline=not args.no_baseline)
    path = save_model(model, Path(args.out) / f"{args.task}.keras")
    report["model_file"] = str(path)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{task.description}")
    print(f"quantum  {report['params']:5d} params  val accuracy {report['val_accuracy']:.4f}  "
          f"({report['train_seconds']:.0f} s, CPU simulation)")
    b = report["baseline"]
    if b:
        print(f"classical baseline {b['params']:5d} params  val accuracy {b['val_accuracy']:.4f}  "
              f"(Dense {b['layers']})")
    else:
        print("classical baseline: none (the inputs are quantum states, not classical features)")
    print(f"saved {path}")
    return 0


def _cmd_export(args):
    from edgezoo.quantum.bundle import export
    from edgezoo.quantum.saving import load_model

    model = load_model(args.model)
    calibration = None
    if args.quantize != "none":
        from edgezoo.quantum.tasks import get_task

        task = get_task(args.calib_task)
        calibration = task.x_train
    from edgezoo.base.output_set import output_set

    with output_set(args.out) as folder:  # the bundle appears whole or not at all
        manifest = export(model, folder, quantize=args.quantize, calibration=calibration,
                          qasm=not args.no_qasm)
    parts = [f"{len(manifest['quantum_layers'])} circuit(s)"] + [f"{k}.tflite" for k in manifest["classical"]]
    print(f"wrote {args.out}/manifest.json ({', '.join(parts)})")
    return 0


def add_quantum_parser(subparsers):
    """Add ``quantum train`` and ``quantum export`` under ``subparsers``."""
    p = subparsers.add_parser("quantum", help="hybrid quantum-classical models (CPU simulation, TFQ)")
    sub = p.add_subparsers(dest="quantum_command", required=True)

    s = sub.add_parser("train", help="train a task's quantum model, beside a same-size classical baseline")
    s.add_argument("task", help="digits, cluster, quantum_data or separable")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--differentiator", choices=["adjoint", "parameter_shift", "finite_difference"])
    s.add_argument("--repetitions", type=int, help="sampled expectations (default: exact)")
    s.add_argument("--noise", help="noise channel after every moment, e.g. depolarize:0.01")
    s.add_argument("--no-baseline", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("export", help="export a .keras hybrid: TFLite, Cirq JSON, parameters, OpenQASM 2/3")
    s.add_argument("model", help=".keras file from 'edgezoo quantum train'")
    s.add_argument("--quantize", default="none", choices=["none", "int8", "float16", "dynamic"],
                   help="for the classical parts")
    s.add_argument("--calib-task", default="digits", help="task whose training inputs calibrate int8")
    s.add_argument("--no-qasm", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_export)
    return p
