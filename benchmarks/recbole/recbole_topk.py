"""Time RecBole 1.2.1's ``full_sort_topk`` for every user of a sequence file (the reference
side of ``benchmarks/recommend_throughput.py``).

Run with the interpreter of the venv made by ``setup_venv.sh``::

    .venv-recbole/bin/python benchmarks/recbole/recbole_topk.py --data-dir ../shared/data/beauty \
        --threads 2 --out recbole-topk.json

The data go through the same conversion and settings as ``recbole_sasrec.py`` (the file
order as time order, no filtering); the model is RecBole's SASRec at its default size
(hidden 64, 2 layers, 2 heads, max length 50), untrained: the cost of a full-ranking top-k
does not depend on the weights. Every user of the test split (their history up to the
test item) is ranked in blocks of ``--batch`` users, encoder included; the JSON holds the
wall time of each repeat, recommendations per second and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recbole_sasrec  # noqa: E402  (the shared conversion and settings)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--model", choices=["SASRec", "GRU4Rec"], default="SASRec")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batch", type=int, default=4096, help="users per full_sort_topk call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed
    from recbole.utils.case_study import full_sort_topk

    import recbole

    # RecBole 1.2.1's chained fillna(inplace=True) warns under pandas 2.x; harmless here
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    if args.threads:
        torch.set_num_threads(args.threads)
    base = recbole_sasrec.parse_args(
        ["--data-dir", str(args.data_dir), "--model", args.model, "--device", args.device, "--out", str(args.out)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recbole_sasrec.convert_sequences(args.data_dir / "sequences.txt", tmp / recbole_sasrec.DATASET_NAME)
        saved, sys.argv = sys.argv, sys.argv[:1]
        try:
            config = Config(
                model=args.model,
                dataset=recbole_sasrec.DATASET_NAME,
                config_dict=recbole_sasrec.recbole_config_dict(base, tmp) | {"state": "ERROR"},
            )
        finally:
            sys.argv = saved
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        _, _, test_data = data_preparation(config, dataset)
        device = config["device"]
        model = get_model(config["model"])(config, test_data._dataset).to(device).eval()
        uids = test_data.dataset.inter_feat[test_data.dataset.uid_field].numpy()

        cuda = torch.device(device).type == "cuda"

        def sync():
            if cuda:
                torch.cuda.synchronize()

        times = []
        with torch.no_grad():
            for _ in range(args.repeats):
                sync()
                t = time.perf_counter()
                for a in range(0, uids.size, args.batch):
                    scores, index = full_sort_topk(uids[a : a + args.batch], model, test_data, k=args.k, device=device)
                    index.cpu()
                sync()
                times.append(time.perf_counter() - t)
    med = float(np.median(times))
    res = {
        "what": f"RecBole {recbole.__version__} full_sort_topk, {args.model}, every test user, k={args.k}",
        "n_users": int(uids.size),
        "n_items": int(dataset.item_num - 1),
        "batch": args.batch,
        "times_s": times,
        "median_s": med,
        "users_per_s": uids.size / med,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__, "numpy": np.__version__},
    }
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
