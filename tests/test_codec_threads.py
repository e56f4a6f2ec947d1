"""A seeded random codec has the same weights when two threads build codecs at once (two steps of
an in-process run): the codes of the demo's caches depend on it."""

from concurrent.futures import ThreadPoolExecutor

import torch

from soda_jax.audio.codec import CodecConfig, MimiCodec


def weights(codec: MimiCodec) -> list[torch.Tensor]:
    return [p.detach().clone() for p in codec.model.parameters()]


def test_concurrent_random_codecs_are_identical():
    alone = weights(MimiCodec.from_config(CodecConfig()))
    with ThreadPoolExecutor(max_workers=4) as pool:
        built = list(pool.map(lambda _: weights(MimiCodec.from_config(CodecConfig())), range(8)))
    for other in built:
        assert all(torch.equal(a, b) for a, b in zip(alone, other))
