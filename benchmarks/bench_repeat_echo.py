"""The repeat-echo benchmark's generated logs hold the repeat share they are asked for."""

import numpy as np
import pytest

import repeat_echo  # noqa: E402  (benchmarks/ is on sys.path for its own files)
from tfllmer_fast.data.cold import repeat_shares
from tfllmer_fast.data.sequences import leave_one_out


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2])
def test_generated_log_has_the_repeat_share(share):
    data = repeat_echo.repeat_log(share, n_users=3000, n_items=300)
    shares = repeat_shares(leave_one_out(data.sequences))
    for which in ("valid", "test"):
        assert shares[which]["repeat"] == pytest.approx(share, abs=0.02)
        assert shares[which]["last_item"] <= shares[which]["repeat"]
    if share == 0.0:  # every user's items are distinct
        seqs = data.sequences.to_lists()
        assert all(len(set(s)) == len(s) for s in seqs)
    assert np.isfinite(data.embeddings).all()
