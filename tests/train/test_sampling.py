"""Random draws accept a generator of any device: the same numbers as drawing on the
generator's device, delivered on the tensor's device (torch itself refuses a CPU generator
for CUDA sampling)."""

import torch

from tfllmer_fast.train import sampling


def test_draws_on_the_generators_device_and_moves_the_result():
    # "meta" stands in for another device (CUDA on a GPU machine): no data, just placement.
    for draw in (
        lambda g, dev: sampling.rand((3, 4), dev, g),
        lambda g, dev: sampling.randint(10, (5,), dev, g),
        lambda g, dev: sampling.multinomial(torch.ones(6) / 6, 7, dev, g),
    ):
        out = draw(torch.Generator().manual_seed(0), torch.device("meta"))
        assert out.device.type == "meta"
        cpu = draw(torch.Generator().manual_seed(0), torch.device("cpu"))
        again = draw(torch.Generator().manual_seed(0), torch.device("cpu"))
        assert torch.equal(cpu, again)


def test_same_stream_as_torch_on_the_cpu():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sampling.rand((4, 2), "cpu", g1), torch.rand((4, 2), generator=g2))
    assert torch.equal(sampling.randint(9, (6,), "cpu", g1), torch.randint(9, (6,), generator=g2))
    assert sampling.rand((2,), "cpu").shape == (2,)  # no generator: torch's global one
