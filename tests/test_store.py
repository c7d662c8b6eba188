"""Atomic outputs and the activation shard format."""

import numpy as np
import pytest
import zarr

from neurofacets.store import ActivationShardWriter, atomic_output, read_layer, write_activation_shard


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.mkdir()
            (tmp / "partial").write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.mkdir()
    assert target.is_dir() and len(list(tmp_path.iterdir())) == 1


def test_incomplete_shard_is_refused(tmp_path):
    writer = ActivationShardWriter(tmp_path / "s.zarr", 3, {"l": (2, 1, 1)})
    writer.write(np.array([0, 1]), {"l": (np.ones((2, 2)), np.zeros((2, 2)))})
    writer.flush()
    with pytest.raises(ValueError, match="incomplete"):
        read_layer([tmp_path / "s.zarr"], "l")
    with pytest.raises(ValueError, match="increasing"):
        writer.write(np.array([1]), {"l": (np.ones((1, 2)), np.zeros((1, 2)))})
    writer.close()
    got = read_layer([tmp_path / "s.zarr"], "l")
    assert got.image_id.tolist() == [0, 1]  # trimmed to the rows written
    assert zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs["n_images"] == 2


def test_read_layer_merges_shards_and_rejects_duplicates(tmp_path):
    rng = np.random.default_rng(0)
    parts = {0: [0, 3, 4], 1: [1, 2, 5]}
    full = rng.random((6, 4)).astype(np.float32)
    for shard, ids in parts.items():
        write_activation_shard(tmp_path / f"{shard}.zarr", ids,
                               {"l": (full[ids], np.arange(len(ids) * 4).reshape(-1, 4), (2, 3))})
    got = read_layer([tmp_path / "1.zarr", tmp_path / "0.zarr"], "l")
    assert got.image_id.tolist() == list(range(6)) and (got.height, got.width) == (2, 3)
    np.testing.assert_array_equal(got.max, full)
    with pytest.raises(KeyError, match="not in"):
        read_layer([tmp_path / "0.zarr"], "other")
    write_activation_shard(tmp_path / "dup.zarr", [3], {"l": (full[[3]], np.zeros((1, 4)), (2, 3))})
    with pytest.raises(ValueError, match="more than one shard"):
        read_layer([tmp_path / "0.zarr", tmp_path / "dup.zarr"], "l")
