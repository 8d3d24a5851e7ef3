import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import cyclic_sequences
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.train.losses import make_loss
from tfllmer_fast.train.models import BERT4Rec, GRU4Rec, SASRec
from tfllmer_fast.train.rows import build_windows


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _small(cls, n_items=30, **kw):
    if cls is GRU4Rec:
        return cls(n_items, hidden=16, max_len=8, gru_hidden=16, **kw)
    return cls(n_items, hidden=16, max_len=8, n_layers=1, **kw)


@pytest.mark.parametrize("cls,layers", [(SASRec, 1), (SASRec, 3), (BERT4Rec, 2)])
def test_last_position_pass_matches_the_full_pass(cls, layers):
    # next_hidden runs the last layer at the last position only: values and every
    # parameter's gradient must be those of the full encode read at the last position.
    torch.manual_seed(1)
    m = cls(40, hidden=16, max_len=12, n_layers=layers, n_heads=2).eval()
    seq = torch.randint(1, 41, (6, 9))
    seq[:3, :4] = 0  # left padding in half the rows
    if cls is BERT4Rec:
        seq[:, -1] = m.mask_token
    full = m.encode(seq)[:, -1]
    last = m.encode(seq, last_only=True)
    assert last.shape == (6, 1, 16)
    torch.testing.assert_close(last[:, 0], full, rtol=1e-5, atol=1e-6)
    w = torch.randn(6, 16)
    g_full = torch.autograd.grad((full * w).sum(), list(m.parameters()), allow_unused=True)
    g_last = torch.autograd.grad((last[:, 0] * w).sum(), list(m.parameters()), allow_unused=True)
    for (name, _), a, b in zip(m.named_parameters(), g_full, g_last):
        if a is None:
            assert b is None, name
        else:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    if cls is SASRec:
        torch.testing.assert_close(m.next_hidden(seq), full, rtol=1e-5, atol=1e-6)


def test_last_position_pass_in_training_mode():
    # Training mode without dropout takes the same kernels as evaluation; with dropout the
    # last layer draws masks for one query row (the math path), and the output stays finite
    # and differs from the dropout-free pass.
    torch.manual_seed(2)
    m = SASRec(30, hidden=16, max_len=8, n_layers=2, n_heads=2, hidden_dropout=0.0, attn_dropout=0.0).train()
    seq = torch.randint(1, 31, (4, 6))
    torch.testing.assert_close(m.next_hidden(seq), m.encode(seq)[:, -1], rtol=1e-5, atol=1e-6)
    m.layers[-1].attn_dropout = 0.5
    h = m.next_hidden(seq)
    assert h.shape == (4, 16) and torch.isfinite(h).all()
    assert not torch.allclose(h, m.eval().next_hidden(seq))


def test_gru_matches_unpadded_run():
    torch.manual_seed(0)
    m = _small(GRU4Rec).eval()
    items = torch.tensor([[4, 9, 2]])
    with torch.no_grad():
        direct = m.dense(m.gru(m.item_emb(items))[0])[:, -1]
        padded = m.next_hidden(torch.tensor([[0, 0, 0, 4, 9, 2]]))
    torch.testing.assert_close(direct, padded)


def test_from_start_positions_make_every_position_a_prefix_pass():
    # RecBole trains one forward pass per prefix; with positions counted from the first item
    # and causal attention, position k of a full window gives that prefix's output exactly,
    # which is what makes training all positions of a window the same epoch as RecBole's.
    torch.manual_seed(0)
    m = _small(SASRec, positions="from_start").eval()
    row = torch.tensor([[0, 0, 7, 3, 9, 4, 2]])
    with torch.no_grad():
        full = m.encode(row)
        for k in range(2, row.shape[1]):
            prefix = torch.cat([torch.zeros(1, row.shape[1] - 1 - k, dtype=torch.long), row[:, 2 : k + 1]], 1)
            torch.testing.assert_close(m.next_hidden(prefix), full[:, k])
    m_end = _small(SASRec, positions="from_end").eval()
    m_end.load_state_dict(m.state_dict())
    with torch.no_grad():
        # with positions from the end, an earlier position is not its prefix's evaluation pass
        prefix = torch.tensor([[0, 0, 0, 0, 7, 3, 9]])
        assert not torch.allclose(m_end.next_hidden(prefix), m_end.encode(row)[:, 4])


def test_unknown_positions_rejected():
    with pytest.raises(ValueError, match="positions"):
        _small(SASRec, positions="middle")
    with pytest.raises(ValueError, match="positions"):
        Config(positions="middle")


def test_sasrec_is_causal():
    torch.manual_seed(0)
    m = _small(SASRec).eval()
    a = torch.tensor([[0, 1, 2, 3, 4]])
    b = torch.tensor([[0, 1, 2, 3, 9]])
    with torch.no_grad():
        torch.testing.assert_close(m.encode(a)[:, :4], m.encode(b)[:, :4])


def test_bert_masks_and_appends_mask_token():
    torch.manual_seed(0)
    m = _small(BERT4Rec, mask_ratio=0.5)
    win = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])
    h, tgt = m.training_pairs(win, torch.Generator().manual_seed(0))
    assert h.shape[0] == tgt.shape[0] >= 2
    assert set(tgt.tolist()) <= {4, 5, 6, 0, 1, 2, 3}
    full = torch.arange(1, 9).unsqueeze(0)  # 8 items = max_len: the oldest drops out
    with torch.no_grad():
        m.eval()
        out = m.next_hidden(full)
        manual = m.encode(torch.cat([full[:, 1:], torch.tensor([[m.mask_token]])], 1))[:, -1]
    torch.testing.assert_close(out, manual)


def test_item_table_checks():
    m = _small(SASRec)
    with pytest.raises(ValueError, match="shape"):
        m.set_item_table(np.zeros((29, 16), np.float32))
    bad = np.zeros((30, 16), np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.set_item_table(bad)
    t = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    m.set_item_table(t)
    np.testing.assert_allclose(m.item_emb.weight[1:31].detach().numpy(), t)
    assert not m.item_emb.weight[0].any()
    with pytest.raises(ValueError, match="temperature"):
        SASRec(10, temperature=0.0)
    with pytest.raises(ValueError, match="multiple"):
        SASRec(10, hidden=10, n_heads=3)


def _loss_inputs():
    torch.manual_seed(0)
    m = _small(SASRec, normalize_items=True, temperature=0.5)
    h = torch.randn(12, 16, requires_grad=True)
    t = torch.randint(30, (12,))
    return m, h, t


def test_full_ce_matches_reference():
    m, h, t = _loss_inputs()
    loss = make_loss("ce", 30)(m, h, t)
    ref = F.cross_entropy(m.score(h), t)
    torch.testing.assert_close(loss, ref)


def test_sampled_softmax_and_bce_match_hand_computation():
    m, h, t = _loss_inputs()
    gen = torch.Generator().manual_seed(5)
    ss = make_loss("sampled_softmax", 30, n_negatives=7)
    loss = ss(m, h, t, gen)
    neg = torch.randint(30, (7,), generator=torch.Generator().manual_seed(5))
    s = m.score(h)
    logits = torch.cat([s.gather(1, t[:, None]), s[:, neg]], 1)  # uniform log-Q is a constant
    logits[:, 1:][neg[None, :] == t[:, None]] = -float("inf")
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros_like(t)))

    bce = make_loss("bce", 30, n_negatives=2)
    loss = bce(m, h, t, torch.Generator().manual_seed(9))
    neg = torch.randint(30, (12, 2), generator=torch.Generator().manual_seed(9))
    pos = s.gather(1, t[:, None]).squeeze(1)
    negs = s.gather(1, neg)
    ref = (-F.logsigmoid(pos) - (F.logsigmoid(-negs) * (neg != t[:, None])).sum(1)).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert torch.isfinite(h.grad).all()


def test_popularity_sampled_softmax_runs():
    m, h, t = _loss_inputs()
    loss = make_loss("sampled_softmax", 30, n_negatives=50, negative_sampling="popularity", item_counts=np.arange(30))(
        m, h, t, torch.Generator().manual_seed(0)
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(h.grad).all()
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge", 30)


def test_windows_cover_every_target_once():
    seqs = cyclic_sequences(n_users=30, n_items=200, step=1, min_len=1, max_len=40, seed=3)
    for causal in (True, False):
        win, wlen = build_windows(seqs, 7, causal)
        assert win.shape[1] == 8
        got = []
        for row, n in zip(win, wlen):
            assert (row[: 8 - n] == 0).all() and (row[8 - n :] > 0).all()
            items = (row[8 - n :] - 1).tolist()
            got.append(items)
        # Predicted items per user, oldest first, must be exactly the user's targets.
        per_user = {}
        for items in got:
            per_user.setdefault(items[-1] - items[-1] % 1, []).append(items)
        targets = sorted(t for items in got for t in (items[1:] if causal else items))
        expected = sorted(t for s in seqs.to_lists() for t in (s[1:] if causal else s))
        assert targets == expected


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_linear_cross_entropy_matches_autograd(with_bias, chunk):
    from tfllmer_fast.train.losses import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    E = torch.randn(50, 16, requires_grad=True)
    b = torch.randn(50, requires_grad=True) if with_bias else None
    t = torch.randint(50, (37,))
    loss = linear_cross_entropy(h, E, t, scale=2.5, bias=b, chunk=chunk)
    (3.0 * loss).backward()
    got = [h.grad.clone(), E.grad.clone()] + ([b.grad.clone()] if with_bias else [])
    for p in (h, E, b):
        if p is not None:
            p.grad = None
    ref = F.cross_entropy(2.5 * h @ E.t() + (b if with_bias else 0.0), t)
    (3.0 * ref).backward()
    torch.testing.assert_close(loss, ref)
    want = [h.grad, E.grad] + ([b.grad] if with_bias else [])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
