"""Semantic-collaborative alignment of Rec-PCA outputs on Beauty as lambda grows.

    python benchmarks/beauty_alignment.py [--lams 0 0.5 1 2] [--dim 64]

MiniLM title embeddings of ../shared/data/beauty (or $TFLLMER_DATA) and the co-occurrence
graph of the leave-one-out training part; prints the alignment score (weighted mean cosine
over graph edges minus that over random pairs) and the kNN overlap of each output.
"""

from __future__ import annotations

import argparse
import warnings

import tfllmer_fast as tf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args()
    ds = tf.load_dataset("beauty")
    split = tf.leave_one_out(ds.sequences)
    A = tf.cooccurrence(split.train)
    d = tf.embedding_diagnostics(ds.embeddings, A)
    print(f"raw embeddings {ds.embeddings.shape}: alignment {d.alignment_score:.4f}, "
          f"kNN overlap {d.knn_overlap:.4f}")
    for lam in args.lams:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Z = tf.RecPCA(n_components=args.dim, lam=lam).fit_transform(ds.embeddings, A)
        d = tf.embedding_diagnostics(Z, A)
        note = "; warning: selected eigenvalues <= 0" if any("<= 0" in str(w.message) for w in caught) else ""
        print(f"lambda {lam:g}: alignment {d.alignment_score:.4f}, kNN overlap {d.knn_overlap:.4f}{note}")


if __name__ == "__main__":
    main()
