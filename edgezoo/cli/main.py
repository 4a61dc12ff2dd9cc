"""The ``edgezoo`` command: a thin layer over the Python API."""
import argparse
import json
import sys

from edgezoo.base.errors import EdgezooError


def _cmd_list(args):
    from edgezoo.zoo import list_models, model_info

    for name in list_models(args.task):
        info = model_info(name)
        print(f"{name:16s} {info['family']:10s} {info['task']:22s} {tuple(info['input_shape'])}  "
              f"arXiv {info['arxiv']}")


def _cmd_info(args):
    from edgezoo.zoo import create_model, model_info

    info = model_info(args.model)
    info["params"] = int(create_model(args.model).count_params())
    print(json.dumps(info, indent=2))


def _cmd_train(args):
    from pathlib import Path

    from edgezoo.base import files
    from edgezoo.zoo import create_model, registry_contract
    from edgezoo.zoo.data.contract import record_in_keras_file
    from edgezoo.zoo.data.sources import load_for_model
    from edgezoo.zoo.training import configure_cpu_devices, deterministic, fit_classifier, get_strategy

    files.check_folder(args.out)
    from edgezoo.zoo.registry import registered_task

    if registered_task(args.model) in ("detection", "detection_sigmoid"):
        return _train_detector(args)
    if args.cpu_devices:
        configure_cpu_devices(args.cpu_devices)
    deterministic(args.seed)  # the same seed trains the same model
    strategy = get_strategy(args.strategy)
    with strategy.scope():
        model = create_model(args.model, input_shape=args.input_shape)
    data = load_for_model(args.data, model.input_shape[1:], registry_contract(args.model),
                          num_classes=model.output_shape[-1])
    print(f"training {args.model} with the {args.strategy} strategy on "
          f"{strategy.num_replicas_in_sync} replica(s)")
    fit_classifier(model, data, epochs=args.epochs, seed=args.seed, learning_rate=args.lr,
                   strategy=strategy, shift=args.shift)
    val = model.evaluate(data.val.x, data.val.y, verbose=0, return_dict=True)
    out = Path(args.out) / f"{args.model}.keras"
    with files.atomic_path(out) as tmp:
        model.save(tmp)
        record_in_keras_file(tmp, registry_contract(args.model))
    print(f"saved {out} (val accuracy {val['acc']:.4f})")


def _train_detector(args):
    from pathlib import Path

    from edgezoo.detect import save_detector, train_detector

    def progress(epoch, loss):
        print(f"epoch {epoch + 1}/{args.epochs}: set loss {loss:.4f}", flush=True)

    model, data, val = train_detector(args.model, args.data, epochs=args.epochs,
                                      learning_rate=args.lr, seed=args.seed, progress=progress)
    out = Path(args.out) / f"{args.model}.keras"
    save_detector(model, data, out)  # the images' range as trained, for convert and test
    print(f"saved {out} (validation mAP {val['mAP']:.4f}, mAP@0.5 {val['mAP50']:.4f} on "
          f"{len(data.val)} {data.name} images)")


def _cmd_eval(args):
    import json

    from edgezoo.detect import evaluate

    result = evaluate(args.model, args.data, args.runtime, seed=args.seed)
    print(json.dumps(result, indent=1))


def _cmd_port(args):
    from edgezoo.port import port_checkpoint
    from edgezoo.zoo.record import describe

    summary = port_checkpoint(args.checkpoint, args.out)
    low, high = (summary["input_contract"] or {}).get("range", (None, None))
    inputs = "" if low is None else f", inputs in [{low:g}, {high:g}]"
    print(f"wrote {summary['out']}: {summary['hub']} {summary['architecture']}, "
          f"{summary['params']:,} params, {describe(summary['preprocessing'])}{inputs}")


def recipe_from_args(args):
    """The recipe: a --recipe file if given, with every flag given on the command line on top."""
    from edgezoo.converters.recipe import Recipe

    base = Recipe.from_file(args.recipe) if args.recipe else Recipe()
    flags = {"quantize": args.quantize, "target": args.target, "prune": args.prune,
             "prune_schedule": args.prune_schedule, "prune_policy": args.prune_policy,
             "lottery_rounds": args.lottery_rounds, "cluster": args.cluster, "distill": args.distill,
             "temperature": args.temperature, "finetune_epochs": args.finetune_epochs,
             "seed": args.seed, "prune_2of4": args.prune_2of4 or None, "qat": args.qat or None,
             "dense_form": args.dense_form, "xnnpack_layernorm": args.xnnpack_layernorm or None,
             "cpu_form": args.cpu_form, "max_latency_ms": args.max_latency_ms,
             "ranges": args.ranges, "adaround": args.adaround or None,
             "bias_correction": args.bias_correction or None, "cluster_fit": args.cluster_fit}
    from edgezoo.base.errors import RecipeError

    try:
        return base.replace(**flags)
    except TypeError as exc:
        raise RecipeError(str(exc)) from None


def _thresholds(args):
    from edgezoo.edge.verification import DEFAULT_THRESHOLDS

    return DEFAULT_THRESHOLDS.replace(top1_agreement=args.min_agreement)


def print_verdict(report):
    """The checks as a table, then one PASS/FAIL line naming each failed check."""
    checks = report.get("checks", {})
    if checks:
        print(f"{'check':28s} {'value':>12s}  {'limit':24s} result")
    for name, check in checks.items():
        value = check["value"]
        value = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{name:28s} {value:>12s}  {str(check['limit'])[:24]:24s} "
              f"{'ok' if check['passed'] else 'FAILED'}")
    for note in report.get("notes") or []:
        print(f"note: {note}")
    agreement = report.get("agreement")
    if agreement and not agreement["informative"]:
        print("agreement is UNINFORMATIVE: " + "; ".join(agreement["reasons"]))
    if report.get("passed", True):
        print("PASS")
    else:
        print("FAIL: " + " | ".join(report["failures"]))


# Choices the parser offers, spelled here so that building it imports no TensorFlow
# (tests/test_cli.py holds them equal to edgezoo.zoo.tasks.TASKS and DENSE_FORMS).
TASK_NAMES = ("classification", "detection", "detection_sigmoid", "causal_lm", "encoder")
DENSE_FORM_NAMES = ("conv1x1", "fc_per_channel", "fc_per_tensor", "fc_per_layer")
CPU_FORM_NAMES = ("auto", "dynamic_int8", "full_int8", "float")
RANGE_NAMES = ("minmax", "percentile", "mse")
CLUSTER_FIT_NAMES = ("finetune", "calibration", "gptq")


def _dense_forms():
    return list(DENSE_FORM_NAMES)


def _task_names():
    return list(TASK_NAMES)


def _cmd_convert(args):
    from edgezoo.convert import convert_pipeline

    from edgezoo.zoo.training import deterministic

    recipe = recipe_from_args(args)
    deterministic(recipe.seed)  # the same seed and inputs give the same bytes and report
    report = convert_pipeline(args.model, args.out, quantize=recipe.quantize, target=recipe.target,
                              calib=args.calib, input_shape=args.input_shape, recipe=recipe,
                              progress=True, input_range=args.input_range,
                              thresholds=_thresholds(args),
                              trust_model_code=args.trust_model_code, task=args.task)
    fits = "" if report.get("fits") is None else f", fits {report['target']}: {report['fits']}"
    arena = f", arena {report['arena_bytes']:,} B" if report.get("arena_bytes") else ""
    agreement = report.get("agreement")
    agreement = (f", agreement {agreement['value']:.4f}"
                 f"{'' if agreement['informative'] else ' (uninformative)'}" if agreement else "")
    print(f"wrote {args.out}/model.tflite ({report['tflite_bytes']:,} B{arena}{fits}{agreement})")
    print_verdict(report)
    return 0 if report["passed"] else 1


def _cmd_test(args):
    from edgezoo.device_test import test_tflite

    report = test_tflite(args.model, args.target, profiles=args.profiles, float_model=args.float,
                         data=args.data, input_range=args.input_range,
                         thresholds=_thresholds(args),
                         trust_model_code=args.trust_model_code, out_dir=args.out,
                         task=args.task)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key in ("model", "target", "inputs", "tflite_bytes", "arena_bytes", "fits", "ops"):
            if key in report:
                value = report[key]
                value = (", ".join(value) if isinstance(value, list) else
                         f"{value:,} B" if key.endswith("bytes") and value is not None else value)
                print(f"{key:14s} {value}")
        for key, value in (report.get("accuracy") or {}).items():
            print(f"accuracy {key:20s} {value:.4f}")
        estimate = report.get("latency_estimate") or {}
        if estimate.get("estimate_ms") is not None:
            print(f"{'latency':14s} {estimate['estimate_ms']:.1f} ms (estimated from MACs)")
        elif estimate:
            print(f"{'latency':14s} no estimate: {estimate.get('reason') or estimate.get('error')}")
        if args.out:
            print(f"wrote {args.out}/report.md (and report.json, report.png)")
        print_verdict(report)
    return 0 if report["passed"] else 1


def _cmd_demo(args):
    from edgezoo.demo import run_demo

    report, timings = run_demo(args.out, epochs=args.epochs)
    acc = report["accuracy"]
    print(f"\n{report['model']} on {report['target']}: fits={report['fits']}  "
          f"tflite={report['tflite_bytes']:,} B  arena={report['arena_bytes']:,} B")
    print(f"accuracy float {acc['float']:.4f}  int8 TFLite Micro {acc['converted_tflite-micro']:.4f}"
          f"  agreement {report['agreement']['value']:.4f} on the {report['agreement']['inputs']}")
    print(f"wall time {timings['wall_time_s']:.0f} s; report in {args.out}/report.md")
    print_verdict(report)
    return 0 if report["passed"] else 1


def _shape(text):
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape must look like 32,32,3, got {text!r}") from None
    return shape


DESCRIPTION = """Keras models from recent papers, compressed for a named board and checked there:
one report says whether the model fits (flash, RAM arena), how well the int8 model
agrees with the float one, and how fast it is. Run 'edgezoo COMMAND --help' for a
command's options."""


def _catalogue():
    """Valid targets, data sets and tasks, for the help texts (read when help is shown)."""
    from edgezoo.edge.profiles import load_profiles
    from edgezoo.zoo import list_tasks
    from edgezoo.zoo.data import DATASETS

    profiles = load_profiles()
    targets = ", ".join(f"{n} ({p.runtime})" for n, p in profiles.items())
    return (f"targets: {targets}\n"
            f"data sets: {', '.join(DATASETS)}, or a .npy/.npz file of inputs (and labels)\n"
            f"tasks: {', '.join(list_tasks())}\n"
            "models: see 'edgezoo list'")


class _Parser(argparse.ArgumentParser):
    """Plain-text help, ending with the valid targets, data sets and tasks."""

    def __init__(self, *args, catalogue=False, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._with_catalogue = catalogue

    def format_help(self):
        if self._with_catalogue and self.epilog is None:
            self.epilog = _catalogue()
        return super().format_help()


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's log lines and the traceback of an internal error")
    p = _Parser(prog="edgezoo", description=DESCRIPTION, catalogue=True)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show TensorFlow's log lines and the traceback of an internal error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser,
                           metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(name, **kwargs):
        kwargs.setdefault("description", kwargs.get("help"))
        return _add(name, parents=[common], catalogue=True, **kwargs)

    sub.add_parser = add_parser

    s = sub.add_parser("list", help="list registered models")
    s.add_argument("--task", help="only the models for this task (listed below)")
    s.set_defaults(fn=_cmd_list)

    s = sub.add_parser("info", help="paper, defaults and parameter count of a model")
    s.add_argument("model")
    s.set_defaults(fn=_cmd_info)

    s = sub.add_parser("train", help="train a model and save it as .keras")
    s.add_argument("model")
    s.add_argument("--data", default="digits",
                   help="digits (classifiers), shapes or a folder of train/val/test COCO folders "
                        "(detectors)")
    s.add_argument("--epochs", type=int, default=60)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--shift", type=int, default=1, help="random translation, in pixels")
    s.add_argument("--input-shape", type=_shape, help="H,W,C (default: the variant's)")
    s.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                   help="tf.distribute strategy; multiworker reads TF_CONFIG")
    s.add_argument("--cpu-devices", type=int, default=0,
                   help="split the CPU into N logical devices (to try data parallelism locally)")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("eval", help="COCO mAP of a detector (.keras, or .tflite in LiteRT or "
                                    "TFLite Micro) on a detection set's test split")
    s.add_argument("model", help=".keras or .tflite file")
    s.add_argument("--data", default="shapes", help="'shapes' or a folder of train/val/test COCO "
                                                    "folders")
    s.add_argument("--runtime", default="keras", choices=["keras", "litert", "tflite-micro"])
    s.add_argument("--seed", type=int, default=0, help="the shapes set's seed")
    s.set_defaults(fn=_cmd_eval)

    s = sub.add_parser("port", help="read a timm or Hugging Face checkpoint into a .keras file")
    s.add_argument("checkpoint", help="hub folder (config.json + model.safetensors) or "
                                      ".safetensors file; pickles (.bin, .pth) are refused")
    s.add_argument("--out", required=True, help="the .keras file to write")
    s.set_defaults(fn=_cmd_port)

    s = sub.add_parser("convert", help="compress and convert a model (name, .keras file or "
                                       "checkpoint)")
    s.add_argument("model", help="registered model name, .keras/.h5 file, or checkpoint (hub "
                                 "folder or .safetensors file)")
    s.add_argument("--recipe", help="JSON recipe file; flags given here override its keys")
    s.add_argument("--prune", type=float, metavar="S", help="magnitude pruning to sparsity S")
    s.add_argument("--prune-schedule", choices=["constant", "polynomial"])
    s.add_argument("--prune-2of4", action="store_true", help="2:4 structured sparsity")
    s.add_argument("--prune-policy", choices=["xnnpack"], help="prune for XNNPACK's sparse kernels")
    s.add_argument("--lottery-rounds", type=int, help="iterative magnitude pruning with rewinding")
    s.add_argument("--cluster", type=int, metavar="K", help="K weight clusters per channel")
    s.add_argument("--cluster-fit", choices=list(CLUSTER_FIT_NAMES),
                   help="how the K values are found: finetune (TFMOT, trains; default), "
                        "calibration (k-means on calibration inputs, no training) or gptq "
                        "(the same with GPTQ's error compensation)")
    s.add_argument("--xnnpack-layernorm", action="store_true",
                   help="LiteRT boards, int8: LayerNorm in the form XNNPACK runs (faster; check "
                        "the agreement it reports)")
    s.add_argument("--dense-form", choices=_dense_forms(),
                   help="how Dense layers are converted: conv1x1 (default on TFLite Micro: "
                        "bit-exact), fc_per_channel, fc_per_tensor (the smallest arena), "
                        "fc_per_layer (per-tensor where the agreement allows)")
    s.add_argument("--cpu-form", choices=list(CPU_FORM_NAMES),
                   help="LiteRT boards, int8: auto (default: the fastest form that agrees, "
                        "measured), dynamic_int8, full_int8 or float")
    s.add_argument("--max-latency-ms", type=float, metavar="MS",
                   help="LiteRT boards: the measured host latency the shipped form must meet")
    s.add_argument("--ranges", choices=list(RANGE_NAMES),
                   help="int8 activation ranges: minmax (the converter's, default), percentile "
                        "(the central 99.99 %%) or mse (least int8 error)")
    s.add_argument("--adaround", action="store_true",
                   help="int8: round each weight up or down to reproduce its layer's output on "
                        "the calibration data (AdaRound)")
    s.add_argument("--bias-correction", action="store_true",
                   help="int8: correct each bias for the mean shift its weights' rounding causes")
    s.add_argument("--qat", action="store_true", help="quantization-aware training")
    s.add_argument("--distill", metavar="TEACHER",
                   help="distil from TEACHER: 'self' (the float model), a model name or file")
    s.add_argument("--temperature", type=float, help="distillation temperature")
    s.add_argument("--quantize", choices=["int8", "int16x8", "float16", "dynamic", "none"])
    s.add_argument("--target", help="device profile, e.g. nrf52840")
    s.add_argument("--calib",
                   help="data: a data set (digits, natural_patches, natural_patch_grid; for "
                        "detectors shapes or a folder of train/val/test COCO folders) or a "
                        ".npy/.npz; its train split calibrates and fine-tunes, its test split "
                        "measures agreement. Required for int8/int16x8")
    s.add_argument("--input-range", metavar="LOW,HIGH",
                   help="the value range the model's inputs were trained in (e.g. 0,255); "
                        "needed for a model file that records none")
    s.add_argument("--min-agreement", type=float, metavar="A",
                   help="top-1 agreement the converted model must reach (default 0.98)")
    s.add_argument("--finetune-epochs", type=int, metavar="N")
    s.add_argument("--seed", type=int)
    s.add_argument("--input-shape", type=_shape, help="H,W,C for a registry name")
    s.add_argument("--task", choices=_task_names(),
                   help="the model's task contract (default: the registry's, or classification "
                        "for a one-output classifier)")
    s.add_argument("--out", required=True)
    s.add_argument("--trust-model-code", action="store_true",
                   help="let a Keras model file run its own code (Lambda layers, custom objects); "
                        "only for files you made or trust: loading runs that code")
    s.set_defaults(fn=_cmd_convert)

    s = sub.add_parser("test", help="check a .tflite against a board without its Keras model")
    s.add_argument("model", help=".tflite file")
    s.add_argument("--target", required=True)
    s.add_argument("--profiles", help="JSON file with more device profiles")
    s.add_argument("--float", "--keras", dest="float",
                   help="the float model (.keras, .h5 or float .tflite), for agreement on --data")
    s.add_argument("--data", help="a data set (its test split; shapes or a folder of "
                                  "train/val/test COCO folders for a detector) or a .npy/.npz "
                                  "(x, y) file; "
                                  "default: seeded random inputs (board checks only)")
    s.add_argument("--input-range", metavar="LOW,HIGH",
                   help="the value range the model's inputs were trained in, for a data set")
    s.add_argument("--min-agreement", type=float, metavar="A",
                   help="top-1 agreement with the float model it must reach (default 0.98)")
    s.add_argument("--task", choices=_task_names(),
                   help="the task whose measure judges agreement (default: the float model's; "
                        "needed for a model with several outputs)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--out", help="also write report.json, report.md and report.png here")
    s.add_argument("--trust-model-code", action="store_true",
                   help="let a Keras model file run its own code (Lambda layers, custom objects); "
                        "only for files you made or trust: loading runs that code")
    s.set_defaults(fn=_cmd_test)

    s = sub.add_parser("demo", help="train vit_micro on digits, convert, run on TFLite Micro")
    s.add_argument("--out", default="artifacts/demo")
    s.add_argument("--epochs", type=int, default=60)
    s.set_defaults(fn=_cmd_demo)
    from edgezoo.cli.quantum import add_quantum_parser
    add_quantum_parser(sub)
    return p


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so output sets and locks unwind as on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _validate(args):
    """Values argparse's types cannot refuse, refused before anything is imported or run."""
    from edgezoo.base.errors import EdgezooError

    for name, low in (("epochs", 1), ("seed", 0), ("shift", 0), ("lottery_rounds", 0),
                      ("finetune_epochs", 0), ("cpu_devices", 0), ("batch_size", 1)):
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise EdgezooError(f"--{name.replace('_', '-')} must be {low} or more, got {value}")
    if getattr(args, "seed", None) is not None and args.seed >= 2**32:
        raise EdgezooError(f"--seed must be below 2**32, got {args.seed}")
    for name in ("lr", "temperature", "min_agreement", "prune"):
        value = getattr(args, name, None)
        if value is not None and not (value == value and abs(value) != float("inf")):
            raise EdgezooError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    if getattr(args, "lr", None) is not None and args.lr <= 0:
        raise EdgezooError(f"--lr must be above 0, got {args.lr}")
    if getattr(args, "min_agreement", None) is not None and not 0 <= args.min_agreement <= 1:
        raise EdgezooError(f"--min-agreement must lie in [0, 1], got {args.min_agreement}")
    if getattr(args, "input_shape", None) is not None:
        from edgezoo.zoo.registry import check_input_shape

        check_input_shape(args.input_shape)


def main(argv=None):
    """Run one command. Called with no ``argv`` (as the ``edgezoo`` program), it also hides
    library log lines (unless ``--verbose``) and turns SIGTERM into a clean exit 143."""
    import signal

    from edgezoo.cli import stages

    process = argv is None
    log_filter = None
    if process and not {"-v", "--verbose"} & set(sys.argv[1:]):  # before help imports anything
        from edgezoo.cli.quiet import StderrFilter, quiet_python_logs

        quiet_python_logs()
        log_filter = StderrFilter()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        if log_filter is not None:
            log_filter.close()
        raise
    command = f"edgezoo {args.command}" + (f" {args.quantum_command}"
                                           if getattr(args, "quantum_command", None) else "")
    if process:
        signal.signal(signal.SIGTERM, _on_sigterm)
        stages.enable(command)
    try:
        _validate(args)
        code = args.fn(args)
    except EdgezooError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted (Ctrl-C); outputs are as they were before", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{command}: terminated (SIGTERM); outputs are as they were before", file=sys.stderr)
        return 143
    except Exception as exc:  # noqa: BLE001  (a bug of ours: one line, the traceback with -v)
        if args.verbose:
            raise
        print(f"{command}: internal error: {type(exc).__name__}: {exc} (this is a bug in "
              "edgezoo; rerun with --verbose for the traceback and report it)", file=sys.stderr)
        return 70
    finally:
        if process:  # the run has ended, its outputs are in place: a late signal changes nothing
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stages.disable()
        if log_filter is not None:
            log_filter.close()
    return code or 0

