"""Train and evaluate RecBole 1.2.1's SASRec / GRU4Rec on a shared-data sequence file, with timings.

This is the reference side of the training-throughput comparison: it runs RecBole on
exactly the data and hyper-parameters our own trainer uses and writes a JSON with separate wall
times for data preparation, each training epoch, each full-ranking validation pass and the final
test pass, plus per-epoch losses and metrics.

Run it with the interpreter of the venv made by ``setup_venv.sh`` (RecBole needs numpy<2), e.g.::

    .venv-recbole/bin/python benchmarks/recbole/recbole_sasrec.py \
        --data-dir ../shared/data/beauty --model SASRec --epochs 1 --out result.json

The sequence file (``user_id item_id item_id ...`` per line, chronological, 1-based item ids) is
converted to RecBole atomic files in a temporary folder, with ``timestamp`` = position in the
line, so RecBole's time ordering ("TO") reproduces the file order exactly. RecBole's logs,
tensorboard files and checkpoints also stay in that temporary folder, which is deleted at exit
(``--keep-tmp`` keeps it). Nothing is written next to the data or in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

# torch >= 2.6 defaults torch.load(weights_only=True), which refuses RecBole's checkpoints
# (they pickle the Config); must be set before torch is imported.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

DATASET_NAME = "seqdata"  # the atomic files are <tmp>/seqdata/seqdata.inter


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder with sequences.txt (shared-data layout)")
    p.add_argument("--model", choices=["SASRec", "GRU4Rec"], default="SASRec")
    p.add_argument("--epochs", type=int, default=1, help="maximum training epochs")
    p.add_argument("--eval-every", type=int, default=1, help="validate every K epochs (RecBole eval_step)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own default)")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--train-batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=4096)
    p.add_argument("--max-len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stopping-step", type=int, default=10)
    p.add_argument("--no-test", action="store_true", help="skip the final test pass")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra RecBole config entry (value parsed as YAML); repeatable",
    )
    p.add_argument("--progress", action="store_true", help="show RecBole's tqdm bars")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder")
    p.add_argument(
        "--eval-checkpoint",
        type=Path,
        default=None,
        help="no training: evaluate this RecBole checkpoint (e.g. the best one a "
        "longer run saved so far) on the validation and test splits",
    )
    p.add_argument(
        "--resume-from",
        type=Path,
        default=None,
        help="continue training from this RecBole checkpoint (weights, optimizer, "
        "epoch, early-stopping state); a copy is used, the file is not touched. "
        "The data order of the resumed epochs differs from an unbroken run's",
    )
    p.add_argument("--out", type=Path, required=True, help="result JSON path")
    args = p.parse_args(argv)
    if args.resume_from is not None and args.eval_checkpoint is not None:
        p.error("--resume-from and --eval-checkpoint exclude each other")
    if args.epochs < 1 or args.eval_every < 1:
        p.error("--epochs and --eval-every must be >= 1")
    return args


def convert_sequences(seq_file: Path, out_dir: Path) -> dict:
    """Write ``seq_file`` as a RecBole ``.inter`` atomic file; return the counts seen."""
    out_dir.mkdir(parents=True)
    users, items, n_inter = set(), set(), 0
    with open(seq_file) as src, open(out_dir / f"{DATASET_NAME}.inter", "w") as dst:
        dst.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in src:
            parts = line.split()
            if not parts:
                continue
            user, seq = parts[0], parts[1:]
            users.add(user)
            items.update(seq)
            n_inter += len(seq)
            # position as timestamp: unique within a user, so "TO" ordering = file order
            dst.writelines(f"{user}\t{item}\t{pos}\n" for pos, item in enumerate(seq))
    return {"n_users": len(users), "n_items": len(items), "n_interactions": n_inter}


def recbole_config_dict(args, tmp: Path) -> dict:
    """The RecBole settings shared with our trainer (the published SASRec-CE setting)."""
    import yaml

    cfg = {
        "data_path": str(tmp),
        "checkpoint_dir": str(tmp / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # the file is already 5-core: filter nothing, drop nothing
        "filter_inter_by_user_or_item": False,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "rm_dup_inter": None,
        "val_interval": None,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "loss_type": "CE",
        "train_neg_sample_args": None,  # full softmax: no negative sampling
        "epochs": args.epochs,
        "eval_step": args.eval_every,
        "stopping_step": args.stopping_step,
        "train_batch_size": args.train_batch_size,
        "eval_batch_size": args.eval_batch_size,
        "learning_rate": args.lr,
        "learner": "adam",
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Recall", "NDCG", "MRR"],
        "topk": [5, 10, 20],
        "valid_metric": "NDCG@10",
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": args.device == "cuda",
        "gpu_id": "0" if args.device == "cuda" else "",
        "worker": 0,
        "show_progress": args.progress,
        "state": "INFO",
        "log_wandb": False,
        "save_dataset": False,
        "save_dataloaders": False,
    }
    if args.model == "SASRec":
        # RecBole's SASRec defaults, spelled out so the JSON records them
        cfg.update(
            {
                "hidden_size": 64,
                "inner_size": 256,
                "n_layers": 2,
                "n_heads": 2,
                "hidden_dropout_prob": 0.5,
                "attn_dropout_prob": 0.5,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-12,
                "initializer_range": 0.02,
            }
        )
    else:
        # RecBole's GRU4Rec defaults
        cfg.update({"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        cfg[key.strip()] = yaml.safe_load(value)
    return cfg


class Stopwatch:
    """Wall-clock timer that waits for queued CUDA work before reading the clock."""

    def __init__(self, device):
        import torch

        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def __enter__(self):
        self._sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self.t0


def make_timed_trainer(trainer_cls):
    """A Trainer subclass recording wall time and results of each epoch and validation pass."""

    class TimedTrainer(trainer_cls):
        def __init__(self, config, model):
            super().__init__(config, model)
            self.epoch_records = []  # dicts: epoch, train_s, loss_sum, loss_mean
            self.valid_records = []  # dicts: epoch, eval_s, score, metrics
            self.best_epoch = None  # the epoch RecBole last saved as its best (its own rule)

        def _save_checkpoint(self, epoch, *args, **kwargs):
            if epoch >= 0:  # fit() saves with epoch -1 when a resumed run has no epoch left
                self.best_epoch = epoch
            return super()._save_checkpoint(epoch, *args, **kwargs)

        def resume_checkpoint(self, resume_file):
            super().resume_checkpoint(resume_file)
            self.best_epoch = self.start_epoch - 1  # the checkpoint holds the best so far

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            with Stopwatch(self.device) as sw:
                loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
            total = float(sum(loss) if isinstance(loss, tuple) else loss)
            self.epoch_records.append(
                {
                    "epoch": epoch_idx,
                    "train_s": sw.seconds,
                    "loss_sum": total,
                    # RecBole sums the batch-mean losses; the mean is comparable across batch counts
                    "loss_mean": total / len(train_data),
                }
            )
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            with Stopwatch(self.device) as sw:
                score, result = super()._valid_epoch(valid_data, show_progress)
            self.valid_records.append(
                {
                    # the epoch just trained (counts from the checkpoint's epoch when resumed)
                    "epoch": self.epoch_records[-1]["epoch"] if self.epoch_records else None,
                    "eval_s": sw.seconds,
                    "score": float(score),
                    "metrics": {k: float(v) for k, v in result.items()},
                }
            )
            return score, result

    return TimedTrainer


def main(argv=None) -> dict:
    args = parse_args(argv)
    seq_file = args.data_dir / "sequences.txt"
    if not seq_file.is_file():
        raise SystemExit(f"no sequences.txt in {args.data_dir}")
    out_path = args.out.resolve()
    command = [sys.executable] + sys.argv

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")

    tmp = Path(tempfile.mkdtemp(prefix="recbole_bench_"))
    cwd = os.getcwd()
    try:
        # RecBole writes ./log and ./log_tensorboard relative to the working directory
        os.chdir(tmp)
        result = run(args, tmp, seq_file, command)
    finally:
        os.chdir(cwd)
        if args.keep_tmp:
            print(f"kept temporary folder {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result, out_path)
    return result


def run(args, tmp: Path, seq_file: Path, command) -> dict:
    import warnings

    import numpy as np
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    import recbole

    # RecBole 1.2.1's chained fillna(inplace=True) warns under pandas 2.x; harmless here
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    timings = {}
    t = time.perf_counter()
    file_counts = convert_sequences(seq_file, tmp / DATASET_NAME)
    timings["convert_s"] = time.perf_counter() - t

    t = time.perf_counter()
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config also parses --key=value argv
    try:
        config = Config(model=args.model, dataset=DATASET_NAME, config_dict=recbole_config_dict(args, tmp))
    finally:
        sys.argv = argv
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    timings["config_s"] = time.perf_counter() - t

    t = time.perf_counter()
    dataset = create_dataset(config)
    timings["create_dataset_s"] = time.perf_counter() - t
    # RecBole counts the [PAD] token in user_num / item_num. Checked before data_preparation,
    # whose sequence augmentation rewrites inter_feat in place.
    counts = {
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
        "n_interactions": int(dataset.inter_num),
    }
    if counts != file_counts:
        raise SystemExit(f"RecBole changed the data: file {file_counts}, RecBole {counts}")

    t = time.perf_counter()
    train_data, valid_data, test_data = data_preparation(config, dataset)
    timings["data_preparation_s"] = time.perf_counter() - t

    device = config["device"]
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    t = time.perf_counter()
    model = get_model(config["model"])(config, train_data._dataset).to(device)
    trainer = make_timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    timings["model_init_s"] = time.perf_counter() - t
    n_params = sum(p.numel() for p in model.parameters())
    if args.eval_checkpoint is not None:
        return evaluate_checkpoint(args, trainer, valid_data, test_data, command)

    resumed = None
    if args.resume_from is not None:
        # RecBole saves later best checkpoints over the file it resumed from: use a copy
        copy = tmp / "saved" / ("resumed-" + args.resume_from.name)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.resume_from, copy)
        trainer.resume_checkpoint(copy)
        resumed = {
            "checkpoint": str(args.resume_from.resolve()),
            "start_epoch": trainer.start_epoch,
            "best_valid_score": float(trainer.best_valid_score),
        }

    t = time.perf_counter()
    best_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=args.progress)
    timings["fit_total_s"] = time.perf_counter() - t
    timings["train_epoch_s"] = [r["train_s"] for r in trainer.epoch_records]
    timings["valid_eval_s"] = [r["eval_s"] for r in trainer.valid_records]

    test_metrics = None
    if not args.no_test:
        # best checkpoint when a validation pass saved one, else the current weights
        has_ckpt = os.path.isfile(trainer.saved_model_file)
        with Stopwatch(device) as sw:
            res = trainer.evaluate(test_data, load_best_model=has_ckpt, show_progress=args.progress)
        timings["test_eval_s"] = sw.seconds  # includes the checkpoint reload (~ms)
        test_metrics = {k: float(v) for k, v in res.items()}

    n_train_samples = len(train_data.dataset)
    epoch_s = timings["train_epoch_s"]
    return {
        "tool": "recbole",
        "model": args.model,
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
        ),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "host": platform.node(),
        "command": command,
        "data": {
            "dir": str(args.data_dir.resolve()),
            **counts,
            "n_train_samples": n_train_samples,  # one per training prefix (RecBole)
            "n_train_batches": len(train_data),
            "n_valid_users": len(valid_data.dataset),
            "n_test_users": len(test_data.dataset),
        },
        "config": {
            k: config[k]
            for k in [
                "loss_type",
                "train_batch_size",
                "eval_batch_size",
                "MAX_ITEM_LIST_LENGTH",
                "learning_rate",
                "learner",
                "epochs",
                "eval_step",
                "stopping_step",
                "seed",
                "eval_args",
                "metrics",
                "topk",
                "valid_metric",
                "hidden_size",
                "weight_decay",
                *(
                    ["inner_size", "n_layers", "n_heads", "hidden_dropout_prob", "attn_dropout_prob", "hidden_act"]
                    if args.model == "SASRec"
                    else ["embedding_size", "num_layers", "dropout_prob"]
                ),
            ]
        },
        "n_params": n_params,
        "resumed": resumed,
        "timings": timings,
        "train_samples_per_s": [n_train_samples / s for s in epoch_s],
        "epochs": trainer.epoch_records,
        "valid": trainer.valid_records,
        # RecBole's choice: ties at 4 decimals count as better, so not always the first maximum
        "best_valid_epoch": trainer.best_epoch,
        "best_valid_score": None if best_valid is None else float(best_score),
        "best_valid_metrics": (None if best_valid is None else {k: float(v) for k, v in best_valid.items()}),
        "test_metrics": test_metrics,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def evaluate_checkpoint(args, trainer, valid_data, test_data, command) -> dict:
    """Valid and test metrics of a saved RecBole checkpoint (same data preparation)."""
    import torch

    path = args.eval_checkpoint.resolve()
    saved = torch.load(path, map_location="cpu", weights_only=False)
    out = {
        "tool": "recbole",
        "model": args.model,
        "command": command,
        "checkpoint": str(path),
        "checkpoint_epoch": saved.get("epoch"),
        "threads": torch.get_num_threads(),
    }
    for name, data in (("valid", valid_data), ("test", test_data)):
        res = trainer.evaluate(data, load_best_model=True, model_file=str(path))
        out[f"{name}_metrics"] = {k: float(v) for k, v in res.items()}
    return out


def print_summary(res: dict, out_path: Path) -> None:
    if "checkpoint" in res:
        v, t = res["valid_metrics"], res["test_metrics"]
        print(
            f"\nRecBole checkpoint {res['checkpoint']} (epoch {res['checkpoint_epoch']}): "
            f"valid NDCG@10 {v['ndcg@10']:.4f} Recall@10 {v['recall@10']:.4f}; "
            f"test NDCG@10 {t['ndcg@10']:.4f} Recall@10 {t['recall@10']:.4f} -> {out_path}"
        )
        return
    tm = res["timings"]
    prep = tm["convert_s"] + tm["config_s"] + tm["create_dataset_s"] + tm["data_preparation_s"]
    print(
        f"\nRecBole {res['versions']['recbole']} {res['model']} on {res['device']} "
        f"({res['threads']} threads): {res['data']['n_users']} users, "
        f"{res['data']['n_items']} items, {res['data']['n_interactions']} interactions"
    )
    print(f"  data preparation      {prep:8.2f} s")
    for rec in res["epochs"]:
        print(
            f"  epoch {rec['epoch']:3d} train       {rec['train_s']:8.2f} s   loss(mean/batch) {rec['loss_mean']:.4f}"
        )
    for rec in res["valid"]:
        m = rec["metrics"]
        print(
            f"  epoch {rec['epoch']:3d} valid pass  {rec['eval_s']:8.2f} s   "
            f"NDCG@10 {m['ndcg@10']:.4f} Recall@10 {m['recall@10']:.4f}"
        )
    if res["test_metrics"] is not None:
        m = res["test_metrics"]
        print(
            f"  test pass             {tm['test_eval_s']:8.2f} s   "
            f"NDCG@10 {m['ndcg@10']:.4f} Recall@10 {m['recall@10']:.4f}"
        )
    print(f"  peak RSS {res['peak_rss_mib']:.0f} MiB -> {out_path}")


if __name__ == "__main__":
    main()
