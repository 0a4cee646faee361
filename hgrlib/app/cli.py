"""Command line: `hgrlib prep` fills the feature cache, `hgrlib train` runs one experiment (also under torchrun,
data parallel: `python -m torch.distributed.run --nproc_per_node=2 -m hgrlib.app.cli train ...`, hgrlib/core/distributed.py),
`hgrlib export RUN` writes a trained run as one model file, `hgrlib predict CLIP ... --model FILE` gives the
emotion of your own clips (hgrlib/app/export.py, hgrlib/app/predict.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from hgrlib.base.project import os_error
from hgrlib.config import AMPS, CLASSES, CORRS, DATASETS, DETECTORS, DEVICES, MODALITIES, PROTOCOLS
from hgrlib.data.records import DataError
from hgrlib.experiment.profiles import PROFILES


def _profile(args: argparse.Namespace):
    """The profile pointed at the dataset, with the face detector and smallest face asked for (if any)."""
    from dataclasses import replace

    from hgrlib.experiment.profiles import get_profile

    p = get_profile(args.profile, args.dataset, args.root, args.classes, os.environ.get("HGRLIB_FOLDS") or "shipped")
    faces = {k: v for k, v in (("detector", args.detector), ("min_face", args.min_face)) if v is not None}
    return replace(p, config=p.config.with_(features=faces)) if faces else p


def cmd_prep(args: argparse.Namespace) -> int:
    from hgrlib.experiment.prepare import prepare_data

    p = _profile(args)
    index_report, prep_report = prepare_data(p.config.data, p.config.features, args.cache, p.synthetic, workers=args.workers)
    print(index_report.summary())
    print(prep_report.summary())
    return 0


def parse_sets(items: list[str]) -> dict[str, dict]:
    """`section.field=value` overrides → Config.with_ sections; values stay text, converted (or rejected) by the Config."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--set {item!r}: expected section.field=value, e.g. loss.w_ay=0 or train.use_unlabeled=false")
        out.setdefault(section, {})[name] = raw
    return out


def train_config(args: argparse.Namespace):
    """The Config `hgrlib train` runs: --config JSON if given, else the profile with the flags; --set applied last."""
    from dataclasses import fields

    from hgrlib.config import Config

    if args.config:
        try:
            with open(args.config) as fh:
                cfg = Config.from_dict(json.load(fh))
        except (OSError, TypeError, ValueError) as e:  # ValueError: not JSON, or a field the Config rejects
            raise ValueError(f"{args.config}: cannot read a config from it ({e})") from e
    else:
        p = _profile(args)
        cfg = p.config.with_(
            model={"modalities": args.modalities},
            loss={"lam": p.lam if args.lam is None else args.lam, "corr": args.corr},
            train={
                "seed": args.seed,
                "fold": args.fold,
                "protocol": args.protocol,
                "labeled_frac": args.labeled_frac,
                "amp": args.amp,
                "compile": args.compile,
                "device": args.device,
                **({"epochs": args.epochs} if args.epochs else {}),
                **({"threads": args.threads} if args.threads is not None else {}),
            },
        )
    sets = parse_sets(args.set)
    sections = [f.name for f in fields(Config)]
    unknown = set(sets) - set(sections)
    if unknown:
        raise ValueError(f"--set: unknown section(s) {sorted(unknown)}; use one of {', '.join(sections)}")
    try:
        return cfg.with_(**sets)
    except TypeError as e:  # dataclasses.replace on an unknown field
        raise ValueError(f"--set: {e}") from e


def cmd_train(args: argparse.Namespace) -> int:
    from hgrlib.experiment.prepare import load_featureset

    cfg = train_config(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    fs = load_featureset(cfg.data, cfg.features, args.cache)
    with torchrun_group() as rank:
        from hgrlib.experiment.runs import cached_fit

        r = cached_fit(cfg, fs, args.runs)
    if rank == 0:  # under torchrun, rank 0 speaks for all
        print(json.dumps({k: r["test"][k] for k in ("acc", "uar", "seg_acc", "clip_acc")} | {"run_dir": r["run_dir"]}, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hgrlib.app.export import export_model

    report = export_model(args.run, args.output, args.cache)
    print(report.summary())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Every clip predicted or reported: exit 0 when all were, 1 when some could not be used (each named on
    stderr as `hgrlib predict: error: <file>: <problem>`); 2 when there is no usable model at all."""
    from hgrlib.app.export import load_model, model_from_run
    from hgrlib.app.predict import ClipFailure, format_text, predict_clips, to_csv, to_json
    from hgrlib.core.runtime import pick_device

    if (args.model is None) == (args.run is None):
        raise ValueError("give the model: --model FILE (from hgrlib export) or --run runs/<hash>")
    try:
        device = pick_device(args.device)
    except RuntimeError as e:
        raise ValueError(str(e)) from e
    if args.model is not None:
        model = load_model(args.model, device)
    else:
        model, report = model_from_run(args.run, args.cache)
        model.to(device)
        for line in report.summary().splitlines():
            print(f"hgrlib predict: {line.strip()}", file=sys.stderr)
    for note in model.notes:
        print(f"hgrlib predict: note: {note}", file=sys.stderr)
    results = predict_clips(model, args.clips)
    good = [r for r in results if not isinstance(r, ClipFailure)]
    if args.json:
        print(to_json(good))
    elif args.csv:
        sys.stdout.write(to_csv(good))
    elif good:
        print(format_text(good))
    for r in results:
        if isinstance(r, ClipFailure):
            print(f"hgrlib predict: error: {r.error}", file=sys.stderr)
    return 0 if len(good) == len(results) else 1


@contextlib.contextmanager
def torchrun_group():
    """This process's rank: under torchrun (WORLD_SIZE > 1) the process group is set up for the duration
    (nccl with CUDA, else gloo; HGRLIB_DDP_BACKEND overrides), else 0."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield 0
        return
    import torch
    import torch.distributed as dist

    dist.init_process_group(os.environ.get("HGRLIB_DDP_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo"))
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hgrlib", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (
        ("prep", cmd_prep, "make/index the data and fill the feature cache (resumable)"),
        ("train", cmd_train, "train and test one configuration (cached by config)"),
    ):
        s = sub.add_parser(name, help=help_)
        s.set_defaults(fn=fn)
        s.add_argument("--dataset", default="synthetic", choices=DATASETS)
        s.add_argument("--root", default=None, help="dataset folder (CSV file for manifest); synthetic: where to write the corpus")
        s.add_argument("--profile", default="default", choices=list(PROFILES))
        s.add_argument("--classes", type=int, default=6, choices=CLASSES)
        s.add_argument("--cache", default="cache", help="feature cache folder")
        s.add_argument("--workers", type=int, default=2)
        s.add_argument(
            "--detector",
            default=None,
            choices=DETECTORS,
            help="face detector (default: the profile's, haar; mtcnn needs scripts/install_mtcnn.sh)",
        )
        s.add_argument(
            "--min-face", type=float, default=None, help="smallest face searched for, as a fraction of the frame height (default 0.1)"
        )
    t = sub.choices["train"]
    t.add_argument("--runs", default="runs")
    t.add_argument("--modalities", default="av", choices=MODALITIES)
    t.add_argument("--lam", type=float, default=None, help="weight of the Soft-HGR terms (0: cross-entropy only)")
    t.add_argument("--corr", default="hgr", choices=CORRS)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--fold", type=int, default=0)
    t.add_argument("--protocol", default="subject", choices=PROTOCOLS)
    t.add_argument("--labeled-frac", type=float, default=1.0)
    t.add_argument("--epochs", type=int, default=0, help="0: the profile's")
    t.add_argument("--device", default="auto", choices=DEVICES)
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the profile's; 0: torch's default)")
    t.add_argument("--amp", default="off", choices=AMPS, help="mixed precision for the networks")
    t.add_argument("--compile", action="store_true", help="torch.compile the training forward pass")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override any config field, e.g. --set loss.w_ay=0 --set train.use_unlabeled=false (repeatable)",
    )
    t.add_argument(
        "--config", default=None, help="a config JSON (e.g. from --print-config or a run's result.json 'config') instead of the flags"
    )
    t.add_argument("--print-config", action="store_true", help="print the config this command would train, and stop")
    e = sub.add_parser("export", help="write a trained run as one model file (weights, configs, classes, normalisation)")
    e.set_defaults(fn=cmd_export)
    e.add_argument("run", help="the run folder, runs/<hash> (its result.json)")
    e.add_argument("-o", "--output", default=None, help="model file to write (default: model-<hash>.pt here)")
    e.add_argument("--cache", default="cache", help="the feature cache the run trained from (for its normalisation statistics)")
    pr = sub.add_parser("predict", help="the emotion of your own clips, per clip and per segment, with a trained model")
    pr.set_defaults(fn=cmd_predict)
    pr.add_argument("clips", nargs="+", metavar="CLIP", help="video files (audio: their own track, or NAME.wav beside them)")
    pr.add_argument("--model", default=None, help="a model file from hgrlib export")
    pr.add_argument("--run", default=None, help="or a run folder runs/<hash> (exported in memory; needs --cache)")
    pr.add_argument("--cache", default="cache", help="with --run: the feature cache the run trained from")
    pr.add_argument("--device", default="auto", choices=DEVICES)
    fmt = pr.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list, one object per clip with its segments")
    fmt.add_argument("--csv", action="store_true", help="CSV: one row per clip (level=clip) and per segment (level=segment)")
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (DataError, ValueError) as e:
        print(f"hgrlib {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder not writable, a full disk: what was finished stays, a rerun goes on from there
        print(f"hgrlib {args.cmd}: error: {os_error(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
