"""What every backbone promises, as a suite each backbone's test class inherits: scores over
the catalogue, normalised scoring, left padding, item tables of every mode, checkpoints,
training pairs, learning a deterministic pattern. A new backbone gets these tests by
subclassing :class:`BackboneContract` and naming its ``model``."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import cyclic_sequences
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.run import build_run_model, make_trainer
from tfllmer_fast.train.checkpoint import model_from_checkpoint
from tfllmer_fast.train.models import build_model
from tfllmer_fast.train.options import ItemTableOptions, ModelOptions
from tfllmer_fast.train.rows import build_windows

N_ITEMS = 30


class BackboneContract:
    model: str = ""
    #: training row layouts the backbone supports
    layouts: tuple = ("windows", "prefixes")

    @pytest.fixture(autouse=True)
    def _threads(self, one_thread):
        yield

    def build(self, **kw):
        options = dict(hidden=16, max_len=8, n_layers=1, gru_hidden=16)
        table = kw.pop("item_table", None)
        torch.manual_seed(0)
        return build_model(ModelOptions.for_model(self.model, **{**options, **kw}), N_ITEMS, table).eval()

    def test_scores_cover_the_catalogue_and_are_finite(self):
        m = self.build()
        seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
        with torch.no_grad():
            s = m(seq)
        assert s.shape == (2, N_ITEMS) and torch.isfinite(s).all()

    def test_a_history_longer_than_max_len_is_refused(self):
        with pytest.raises(ValueError, match="exceeds max_len"):
            self.build().encode(torch.ones(1, 9, dtype=torch.long))

    @pytest.mark.parametrize("positions", ["from_start", "from_end"])
    def test_left_padding_changes_nothing(self, positions):
        m = self.build(positions=positions)
        seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
        wide = torch.cat([torch.zeros(2, 3, dtype=torch.long), seq], dim=1)
        with torch.no_grad():
            torch.testing.assert_close(m.next_hidden(seq), m.next_hidden(wide))
            torch.testing.assert_close(m.next_hidden(seq[:1, 2:]), m.next_hidden(seq[:1]))

    @pytest.mark.parametrize("normalize_hidden", [False, True])
    def test_normalised_scoring_is_a_scaled_cosine(self, normalize_hidden):
        m = self.build(normalize_items=True, normalize_hidden=normalize_hidden, temperature=0.1)
        h = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
        hh = m.output_hidden(h)
        if self.model == "bert4rec":  # output head: dense -> GELU -> LayerNorm
            ref = m.head_ln(F.gelu(m.head(h)))
        else:
            ref = h
        ref = F.normalize(ref, dim=1) if normalize_hidden else ref
        torch.testing.assert_close(hh, ref)
        e = m.item_emb.weight[1 : N_ITEMS + 1]
        expected = ref @ F.normalize(e, dim=1).t() / 0.1
        torch.testing.assert_close(m.score(h), expected)
        with torch.no_grad():  # the item side is scale invariant
            m.item_emb.weight[1 : N_ITEMS + 1] *= torch.rand(N_ITEMS, 1) * 5 + 0.1
        torch.testing.assert_close(m.score(h), expected)
        items = torch.tensor([3, 0, 29])
        torch.testing.assert_close(m.score(h, items), expected[:, items])
        per_row = torch.randint(N_ITEMS, (5, 4))
        torch.testing.assert_close(m.score(h, per_row), expected.gather(1, per_row))

    @pytest.mark.parametrize("mode", ["free", "frozen", "frozen+delta"])
    def test_an_item_table_of_every_mode_is_set_and_scored(self, mode):
        m = self.build(normalize_items=True, item_table=ItemTableOptions(mode=mode))
        table = torch.randn(N_ITEMS, 16, generator=torch.Generator().manual_seed(2))
        m.set_item_table(table)
        torch.testing.assert_close(m.item_emb.weight[1 : N_ITEMS + 1], table)
        assert not m.item_emb.weight[0].any()  # padding row
        with pytest.raises(ValueError, match="item table must have shape"):
            m.set_item_table(table[:-1])
        with pytest.raises(ValueError, match="NaN or Inf"):
            m.set_item_table(torch.full((N_ITEMS, 16), float("nan")))

    @pytest.mark.parametrize("mode", ["free", "frozen+delta"])
    def test_a_checkpoint_gives_back_the_same_scores(self, mode):
        cfg = Config(model=self.model, hidden=16, max_len=8, n_layers=1, gru_hidden=16, item_table_mode=mode)
        torch.manual_seed(0)
        m = build_run_model(cfg, N_ITEMS).eval()
        st = {"config": cfg.to_dict(), "model": m.state_dict(), "best_state": None}
        again = model_from_checkpoint(st)
        seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
        with torch.no_grad():
            assert torch.equal(m(seq), again(seq))

    def test_training_pairs_are_real_items_at_real_positions(self):
        seqs = cyclic_sequences(n_users=16, n_items=N_ITEMS, max_len=10)
        m = self.build().train()
        windows, _ = build_windows(seqs, m.max_len, m.causal)
        h, targets = m.training_pairs(torch.as_tensor(windows), torch.Generator().manual_seed(0))
        assert h.shape == (targets.shape[0], 16) and targets.shape[0] > 0
        assert targets.min() >= 0 and targets.max() < N_ITEMS

    def test_it_learns_a_deterministic_pattern(self):
        for samples in self.layouts:
            self._learns(samples)

    def _learns(self, samples):
        split = leave_one_out(cyclic_sequences(n_users=32, n_items=20, max_len=10))
        bert = self.model == "bert4rec"  # cloze training learns this pattern more slowly
        # prefix rows make ~5x more steps per epoch than windows: a smaller step size
        lr = 3e-3 if bert or samples == "prefixes" else 1e-2
        cfg = Config(
            model=self.model, init="random", embeddings=None, normalize_items=False, hidden=32, max_len=8,
            dropout=0.0, epochs=1, batch_size=8, train_samples=samples, lr=lr, mask_ratio=0.3, progress=False,
            threads=1, seed=0,
        )  # fmt: skip
        torch.manual_seed(0)
        net = build_run_model(cfg, 20)
        tr = make_trainer(cfg, net, split)
        losses = [tr.train_epoch() for _ in range(80 if bert else 15)]
        assert losses[-1] < (0.5 if bert else 0.05) * losses[0], losses
        net.eval()
        with torch.no_grad():
            h, tgt = net.training_pairs(tr.windows, torch.Generator().manual_seed(0))
            scores = net.score(h)
        ranks = (scores > scores.gather(1, tgt[:, None])).sum(1)
        if bert:  # fresh random masks (some neighbours masked too): near the top
            assert (ranks < 3).float().mean() > 0.6
        else:
            assert (ranks == 0).float().mean() > 0.95
        assert tr.evaluate("test")["recall@5"] > 0.9  # the held-out targets of the pattern too
