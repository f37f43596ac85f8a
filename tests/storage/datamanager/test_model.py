"""Random writes, deletes and checkpoints against a dict model: reads always agree."""

from __future__ import annotations

import random

import attrs
import pytest

from agola.errors import NotExist
from agola.storage.datamanager import Action
from tests.storage.datamanager.conftest import FAST, Stack
from tests.storage.datamanager.mirror import Mirror
from tests.support.waiting import wait_for


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_reads_match_a_dict_model(embedded_stack: Stack, seed: int) -> None:
    rng = random.Random(seed)
    # Tiny files so checkpoints split, keep and rewrite many id ranges.
    dm = await embedded_stack.open(attrs.evolve(FAST, max_data_file_size=600))
    model: dict[tuple[str, str], bytes] = {}
    ids = [f"k{i:03d}" for i in range(60)]
    for step in range(60):
        actions = []
        for _ in range(rng.randint(1, 6)):
            key = (rng.choice(["user", "org"]), rng.choice(ids))
            if rng.random() < 0.3:
                actions.append(Action.delete(*key))
                model.pop(key, None)
            else:
                data = f"{step}-{rng.random()}".encode() * rng.randint(1, 4)
                actions.append(Action.put(*key, data))
                model[key] = data
        await dm.write_wal(actions)
        if rng.random() < 0.25:
            await dm.force_checkpoint()
        if step % 10 == 9:
            for dt in ("user", "org"):
                listed = {(dt, e.id): e.data for e in await dm.list_objects(dt)}
                assert listed == {k: v for k, v in model.items() if k[0] == dt}
            for key in rng.sample([(dt, i) for dt in ("user", "org") for i in ids], 20):
                if key in model:
                    assert await dm.read_object(*key) == model[key]
                else:
                    with pytest.raises(NotExist):
                        await dm.read_object(*key)
    # A readdb built from scratch now holds exactly the model.
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: mirror.synced and mirror.objects == model, timeout=20, interval=0.05)
    await mirror.stop()
