"""Command line: python -m training {summary,train,export,evaluate} [--arch classic|modern]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.architectures import ARCHITECTURES

DEFAULT_REPOSITORY = Path("models")
DEFAULT_VERSION = "1"
DEFAULT_MODEL = DEFAULT_REPOSITORY / "mnist_cnn" / DEFAULT_VERSION / "model.onnx"


def cmd_summary(args: argparse.Namespace) -> None:
    from training.architectures import build_model
    from training.model import format_layer_table, layer_table

    print(format_layer_table(layer_table(build_model(args.arch))))


def cmd_train(args: argparse.Namespace) -> None:
    from training.data import load_split
    from training.train import default_config, save_checkpoint, train

    config = default_config(
        args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        max_steps=2 if args.dry_run else None,
        augment=not args.no_augment,
        calibrate=not args.no_calibrate,
        threads=args.threads,
        time_budget_s=args.time_budget,
    )
    if args.dry_run:
        config.epochs, config.limit = 1, config.limit or 2048
    split = load_split("train", args.data_dir)
    model, record = train(split, config)
    path = save_checkpoint(model, record, args.output or ARCHITECTURES[args.arch].checkpoint)
    print(
        f"{args.arch}: {record['schedule']['steps']} steps (stopped by {record['schedule']['stopped_by']}), "
        f"selected epoch {record['selected']['epoch']} ({record['selected']['weights']} weights), "
        f"val acc {record['selected']['val_accuracy']:.4f}, temperature {model.temperature}, "
        f"{record['wall_time_s']:.0f}s; saved {path}"
    )


def cmd_export(args: argparse.Namespace) -> None:
    from training.data import Split, load_split
    from training.evaluate import format_metrics
    from training.export import ExportError, build_card, export_onnx, export_to_repository, measure, write_card
    from training.train import load_checkpoint

    checkpoint = args.checkpoint or ARCHITECTURES[args.arch or "classic"].checkpoint
    model, record = load_checkpoint(checkpoint)
    if args.arch and model.arch != args.arch:
        raise ExportError(f"{checkpoint} holds a {model.arch} model, not {args.arch}: pass --arch {model.arch}")
    test = load_split("test", args.data_dir)
    if args.limit:
        test = Split(test.images[: args.limit], test.labels[: args.limit])
    if args.output:  # the single-file layout: <output>.onnx with <output>.json beside it
        onnx_path = export_onnx(model, args.output)
        metrics = measure(model, onnx_path, test)  # raises ParityError on disagreement
        card = build_card(model, onnx_path, version=args.version, training=record, metrics=metrics, name=args.name)
        card_path = write_card(card, onnx_path.with_suffix(".json"))
    else:
        name = args.name or ARCHITECTURES[model.arch].model_name
        onnx_path, card_path, card = export_to_repository(
            model, args.repository, name=name, version=args.version, training=record, test=test, force=args.force
        )
    print(format_metrics(card["metrics"]))
    print(f"parity: {card['metrics']['parity']}")
    print(f"wrote {onnx_path} and {card_path} (sha256 {card['sha256'][:16]}...)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from training.data import load_split
    from training.evaluate import evaluate_onnx, format_metrics

    models = args.model or [DEFAULT_MODEL]
    for model in models:
        if not model.is_file():
            raise FileNotFoundError(f"{model}: no such model file")
    if args.robustness:
        from training.robustness import report

        print(report(models, args.data_dir, write_cards=args.write_cards))
        return
    for model in models:
        print(f"{model}:")
        print(format_metrics(evaluate_onnx(model, load_split("test", args.data_dir))))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where it is None and the help says what happens instead."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def per_arch(field: str) -> str:
    return ", ".join(f"{arch} {getattr(recipe, field)}" for arch, recipe in ARCHITECTURES.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    fmt = HelpFormatter
    sub = parser.add_subparsers(dest="command", required=True)
    archs = list(ARCHITECTURES)

    def data_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="MNIST IDX files (default: $MNIST_DATA_DIR, else ~/.cache/mnist; downloaded if missing)",
        )

    summary = sub.add_parser("summary", help="print the layer table computed from the model", formatter_class=fmt)
    summary.add_argument("--arch", choices=archs, default="classic", help="architecture")

    train = sub.add_parser("train", help="train on MNIST and save a checkpoint", formatter_class=fmt)
    train.add_argument("--arch", choices=archs, default="classic", help="architecture")
    train.add_argument("--epochs", type=int, default=None, help=f"training epochs (default: {per_arch('epochs')})")
    train.add_argument("--batch-size", type=int, default=128, help="mini-batch size")
    train.add_argument(
        "--lr", type=float, default=None, help=f"peak learning rate, one-cycle (default: {per_arch('lr')})"
    )
    train.add_argument(
        "--weight-decay", type=float, default=None, help=f"AdamW weight decay (default: {per_arch('weight_decay')})"
    )
    train.add_argument("--seed", type=int, default=1, help="random seed (split, init, shuffling, augmentation)")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--limit", type=int, default=None, help="use only the first N training images (default: all)")
    train.add_argument(
        "--no-augment", action="store_true", help="turn off augmentation (stroke width, affine, elastic)"
    )
    train.add_argument(
        "--no-calibrate", action="store_true", help="keep temperature 1 instead of fitting it on the validation images"
    )
    train.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds: the one-cycle schedule follows whichever is further along, steps or time, and training "
        "stops within the budget, so --epochs becomes a maximum (default: no budget, all epochs run)",
    )
    train.add_argument("--dry-run", action="store_true", help="one epoch of 2 steps on 2048 images, for tests")
    train.add_argument(
        "--output", type=Path, default=None, help="checkpoint to write (default: artifacts/<model name>.pt)"
    )
    data_flag(train)

    export = sub.add_parser(
        "export", help="export a checkpoint to ONNX + model card in the model repository", formatter_class=fmt
    )
    export.add_argument(
        "--arch", choices=archs, default=None, help="architecture (default: the checkpoint's); picks the checkpoint"
    )
    export.add_argument(
        "--checkpoint", type=Path, default=None, help="checkpoint from train (default: artifacts/<model name>.pt)"
    )
    export.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY, help="model repository folder")
    export.add_argument(
        "--name",
        default=None,
        help="model name: writes <repository>/<name>/<version>/ (default: "
        + ", ".join(f"{a} {r.model_name}" for a, r in ARCHITECTURES.items())
        + ")",
    )
    export.add_argument("--version", default=DEFAULT_VERSION, help="model version: a positive integer")
    export.add_argument("--force", action="store_true", help="replace the version if it already exists")
    export.add_argument(
        "--output",
        type=Path,
        default=None,
        help="instead of the repository, write this ONNX file with its card beside it (<stem>.json)",
    )
    export.add_argument(
        "--limit", type=int, default=None, help="measure on the first N test images only (default: all 10,000)"
    )
    data_flag(export)

    evaluate = sub.add_parser("evaluate", help="evaluate an ONNX model on the test set", formatter_class=fmt)
    evaluate.add_argument(
        "model",
        type=Path,
        nargs="*",
        help=f"ONNX model files (default: {DEFAULT_MODEL})",
    )
    evaluate.add_argument(
        "--robustness",
        action="store_true",
        help="accuracy of each model under sixteen corruptions of the test set (training/robustness.py), as markdown",
    )
    evaluate.add_argument(
        "--write-cards", action="store_true", help="with --robustness: also store the table in each model's card.json"
    )
    data_flag(evaluate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        {"summary": cmd_summary, "train": cmd_train, "export": cmd_export, "evaluate": cmd_evaluate}[args.command](args)
    except Exception as e:  # one clear line for known failures (data, parity, export), not a traceback
        from training.data import DataError
        from training.export import ExportError, ParityError

        if isinstance(e, DataError | ParityError | ExportError | FileNotFoundError):
            sys.exit(f"error: {e}")
        raise


if __name__ == "__main__":
    main()
