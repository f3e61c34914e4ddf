"""Command line: python -m training {summary,train,export,evaluate}."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CHECKPOINT = Path("artifacts/mnist_cnn.pt")
DEFAULT_MODEL = Path("models/mnist_cnn.onnx")


def cmd_summary(args: argparse.Namespace) -> None:
    from training.model import MnistCNN, format_layer_table, layer_table

    print(format_layer_table(layer_table(MnistCNN())))


def cmd_train(args: argparse.Namespace) -> None:
    from training.data import load_split
    from training.train import TrainConfig, save_checkpoint, train

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        max_steps=2 if args.dry_run else None,
        augment=not args.no_augment,
        threads=args.threads,
    )
    if args.dry_run:
        config.epochs, config.limit = 1, config.limit or 2048
    split = load_split("train", args.data_dir)
    model, record = train(split, config)
    path = save_checkpoint(model, record, args.output)
    print(
        f"selected epoch {record['selected']['epoch']} ({record['selected']['weights']} weights), "
        f"val acc {record['selected']['val_accuracy']:.4f}, {record['wall_time_s']:.0f}s; saved {path}"
    )


def cmd_export(args: argparse.Namespace) -> None:
    from training.data import load_split
    from training.evaluate import evaluate_onnx, format_metrics, test_images
    from training.export import build_card, check_parity, export_onnx, write_card
    from training.train import load_checkpoint

    model, record = load_checkpoint(args.checkpoint)
    test = load_split("test", args.data_dir)
    onnx_path = export_onnx(model, args.output)
    parity = check_parity(model, onnx_path, test_images(test))  # raises ParityError on disagreement
    metrics = evaluate_onnx(onnx_path, test)
    metrics["parity"] = parity
    card = build_card(model, onnx_path, version=args.version, training=record, metrics=metrics)
    card_path = write_card(card, onnx_path.with_suffix(".json"))
    print(format_metrics(metrics))
    print(f"parity: {parity}")
    print(f"wrote {onnx_path} and {card_path} (sha256 {card['sha256'][:16]}...)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from training.data import load_split
    from training.evaluate import evaluate_onnx, format_metrics

    if not args.model.is_file():
        raise FileNotFoundError(f"{args.model}: no such model file")
    print(format_metrics(evaluate_onnx(args.model, load_split("test", args.data_dir))))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("summary", help="print the layer table computed from the model", formatter_class=fmt)

    def data_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="MNIST IDX files (default: $MNIST_DATA_DIR, else ~/.cache/mnist; downloaded if missing)",
        )

    train = sub.add_parser("train", help="train on MNIST and save a checkpoint", formatter_class=fmt)
    train.add_argument("--epochs", type=int, default=20, help="training epochs")
    train.add_argument("--batch-size", type=int, default=128, help="mini-batch size")
    train.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    train.add_argument("--seed", type=int, default=1, help="random seed (split, init, shuffling, augmentation)")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    train.add_argument("--no-augment", action="store_true", help="turn off random affine augmentation")
    train.add_argument("--dry-run", action="store_true", help="one epoch of 2 steps on 2048 images, for tests")
    train.add_argument("--output", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint to write")
    data_flag(train)

    export = sub.add_parser("export", help="export a checkpoint to ONNX + model card", formatter_class=fmt)
    export.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint from train")
    export.add_argument("--output", type=Path, default=DEFAULT_MODEL, help="ONNX file; the card goes beside it")
    export.add_argument("--version", default="1.0.0", help="model version written to the card")
    data_flag(export)

    evaluate = sub.add_parser("evaluate", help="evaluate an ONNX model on the test set", formatter_class=fmt)
    evaluate.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL, help="ONNX model file")
    data_flag(evaluate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        {"summary": cmd_summary, "train": cmd_train, "export": cmd_export, "evaluate": cmd_evaluate}[args.command](args)
    except Exception as e:  # one clear line for known failures (data, parity), not a traceback
        from training.data import DataError
        from training.export import ParityError

        if isinstance(e, DataError | ParityError | FileNotFoundError):
            sys.exit(f"error: {e}")
        raise


if __name__ == "__main__":
    main()
