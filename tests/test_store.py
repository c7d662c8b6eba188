"""Atomic outputs and the activation shard format."""

import numpy as np
import pytest
import zarr

from neurofacets.store import (
    ActivationShardWriter,
    StoreIntegrityError,
    atomic_output,
    read_layer,
    write_activation_shard,
)


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
    writer.write(np.array([0, 1]), {"l": (np.ones((2, 2)), np.zeros((2, 2)))}, np.array([7, 8]))
    writer.flush()
    with pytest.raises(ValueError, match="incomplete"):
        read_layer([tmp_path / "s.zarr"], "l")
    with pytest.raises(ValueError, match="increasing"):
        writer.write(np.array([1]), {"l": (np.ones((1, 2)), np.zeros((1, 2)))}, np.array([9]))
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


@pytest.fixture
def three_chunk_shard(tmp_path):
    """A complete shard of 2100 images (chunks of 1024 rows: 3 per array) and its true values."""
    rng = np.random.default_rng(1)
    ids = np.arange(2100)
    mx = rng.random((2100, 3)).astype(np.float32)
    am = rng.integers(0, 6, (2100, 3)).astype(np.int32)
    path = tmp_path / "shard-000.zarr"
    write_activation_shard(path, ids, {"conv1_1": (mx, am, (2, 3))})
    np.testing.assert_array_equal(read_layer([path], "conv1_1").max, mx)
    return path


@pytest.mark.parametrize("array", ["conv1_1/max", "conv1_1/argmax", "image_id"])
def test_overwritten_bytes_in_a_chunk_are_an_error_naming_store_array_and_chunk(three_chunk_shard, array):
    two_d = "/" in array  # the layer arrays are (images, channels), image_id is (images,)
    chunk = three_chunk_shard / array / ("c/1/0" if two_d else "c/1")
    data = bytearray(chunk.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # 64 bytes of zeros in the middle of the chunk
    chunk.write_bytes(bytes(data))
    index = "(1, 0)" if two_d else "(1,)"
    with pytest.raises(StoreIntegrityError) as info:
        read_layer([three_chunk_shard], "conv1_1")
    message = str(info.value)
    assert str(three_chunk_shard) in message and f"array '{array}'" in message
    assert f"chunk {index} (rows 1024..2047) is damaged" in message


def test_without_the_checksum_the_same_damage_reads_as_silently_wrong_numbers(tmp_path):
    """The control: zarr's default zstd (no checksum) returns wrong values for that damage."""
    rng = np.random.default_rng(1)
    values = rng.random((1024, 3)).astype(np.float32)
    array = zarr.create_array(str(tmp_path / "plain.zarr"), shape=values.shape, chunks=values.shape,
                              dtype="float32")
    array[:] = values
    chunk = tmp_path / "plain.zarr" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    chunk.write_bytes(bytes(data))
    assert not np.array_equal(zarr.open_array(str(tmp_path / "plain.zarr"), mode="r")[:], values)


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_missing_or_emptied_chunk_of_a_complete_store_is_an_error(three_chunk_shard, damage):
    chunk = three_chunk_shard / "conv1_1" / "argmax" / "c" / "2" / "0"
    if damage == "deleted":
        chunk.unlink()
    else:
        chunk.write_bytes(b"")
    with pytest.raises(StoreIntegrityError) as info:
        read_layer([three_chunk_shard], "conv1_1")
    message = str(info.value)
    assert "array 'conv1_1/argmax', chunk (2, 0) (rows 2048..2099)" in message
    assert ("is missing" if damage == "deleted" else "is damaged") in message


def test_damaged_metadata_is_an_error_naming_the_store(three_chunk_shard):
    (three_chunk_shard / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    with pytest.raises(StoreIntegrityError, match=f"activation shard {three_chunk_shard}: unreadable metadata"):
        read_layer([three_chunk_shard], "conv1_1")


@pytest.fixture
def shard_with_candidates(three_chunk_shard):
    """The three-chunk shard with its per-shard top-k candidates (extraction.shard_top_k)."""
    from neurofacets.topk import write_shard_top_k

    write_shard_top_k(zarr.open_group(str(three_chunk_shard), mode="r+"), 5)
    return three_chunk_shard


@pytest.mark.parametrize("damage", ["deleted", "emptied", "overwritten"])
@pytest.mark.parametrize("array", ["value", "image_id", "argmax"])
def test_damaged_shard_candidates_are_an_error_not_dead_neurons(shard_with_candidates, array, damage):
    # encode_topk reads these by default: a lost chunk must not read back as zeros
    # (every neuron of the layer silently dead)
    from neurofacets.topk import read_shard_top_k

    before = read_shard_top_k(shard_with_candidates, "conv1_1")
    assert (before.n_counted == 5).all()
    chunk = shard_with_candidates / "conv1_1" / "topk" / array / "c" / "0" / "0"
    if damage == "deleted":
        chunk.unlink()
    elif damage == "emptied":
        chunk.write_bytes(b"")
    else:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2:len(data) // 2 + 8] = bytes(8)
        chunk.write_bytes(bytes(data))
    with pytest.raises(StoreIntegrityError) as info:
        read_shard_top_k(shard_with_candidates, "conv1_1")
    assert str(shard_with_candidates) in str(info.value) and f"conv1_1/topk/{array}" in str(info.value)
