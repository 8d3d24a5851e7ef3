"""The package's CPU dropout and attention draw what torch's own draw: the same masks, the
same generator state afterwards and the same results, bit for bit (a lone run's numbers must
not depend on which of the two runs)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfllmer_fast.train.models.dropout import Dropout, attention, dropout_noise


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(3,), (4, 7), (2, 5, 33)])
def test_noise_equals_bernoulli_and_leaves_the_generator_where_it_does(p, shape):
    a, b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    ours = dropout_noise(shape, p, a)
    torchs = torch.empty(shape).bernoulli_(1 - p, generator=b).div_(1 - p)
    assert torch.equal(ours, torchs)
    assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_module_equals_torchs(p):
    x = torch.randn(8, 13, 16, requires_grad=True)
    torch.manual_seed(3)
    y = Dropout(p).train()(x)
    state = torch.get_rng_state()
    torch.manual_seed(3)
    z = nn.Dropout(p).train()(x)
    assert torch.equal(y, z) and torch.equal(state, torch.get_rng_state())
    gy, gz = torch.autograd.grad(y.sum(), x), torch.autograd.grad(z.sum(), x)
    assert torch.equal(gy[0], gz[0])
    assert torch.equal(Dropout(p).eval()(x), x)


@pytest.mark.parametrize("p,training", [(0.2, True), (0.0, True), (0.2, False)])
def test_attention_equals_torchs_scaled_dot_product_attention(p, training):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 9, 8, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.ones(9, 9, dtype=torch.bool).tril().expand(3, 1, 9, 9)
    torch.manual_seed(5)
    ours = attention(q, k, v, mask, p, training)
    state = torch.get_rng_state()
    torch.manual_seed(5)
    torchs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p if training else 0.0)
    assert torch.equal(ours, torchs) and torch.equal(state, torch.get_rng_state())
    for a, b in zip(torch.autograd.grad(ours.sum(), (q, k, v)), torch.autograd.grad(torchs.sum(), (q, k, v))):
        assert torch.equal(a, b)
