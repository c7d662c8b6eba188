"""The layers job's table, kept per architecture, input size and layers (issue 30): a kept copy is
byte for byte what measuring writes; an unpinned architecture, another key or an unreadable
copy measures."""

from __future__ import annotations

import logging

import pytest

from neurofacets import layer_geometry_cache as cache
from neurofacets.models import network

LAYERS = ["conv1_1", "conv1_2", "conv2_1"]


def test_a_kept_table_is_what_measuring_writes(tmp_path, monkeypatch, caplog):
    measured = tmp_path / "measured.csv"
    network.write_layers_table("vgg16", LAYERS, 32, str(measured))  # the measurement, directly

    first = cache.write_layers_table_kept("vgg16", LAYERS, 32, tmp_path / "a.csv", code="c1",
                                          cache_dir=tmp_path / "kept")
    assert first.read_bytes() == measured.read_bytes()
    kept = list((tmp_path / "kept").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == measured.read_bytes()

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured although a table was kept")

    monkeypatch.setattr(network, "write_layers_table", no_measuring)
    with caplog.at_level(logging.INFO, logger="neurofacets"):
        again = cache.write_layers_table_kept("vgg16", LAYERS, 32, tmp_path / "b.csv", code="c1",
                                              cache_dir=tmp_path / "kept")
    assert again.read_bytes() == measured.read_bytes()
    assert again.stat().st_mode == measured.stat().st_mode  # readable as any output (the umask's mode)
    assert "measured by an earlier run" in caplog.text

    # another input size, other layers or other code: another key, so measured
    for changed in ({"image_size": 64}, {"spec": LAYERS[:2]}, {"code": "c2"}):
        args = {"arch": "vgg16", "spec": LAYERS, "image_size": 32, "code": "c1", **changed}
        with pytest.raises(AssertionError, match="measured although"):
            cache.write_layers_table_kept(args["arch"], args["spec"], args["image_size"], tmp_path / "c.csv",
                                          code=args["code"], cache_dir=tmp_path / "kept")


def test_an_unreadable_copy_is_measured_again(tmp_path, caplog):
    name = cache.cache_name("vgg16", LAYERS, 32, "c1")
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / name).write_text("not,a\nlayer table\n")
    measured = tmp_path / "measured.csv"
    network.write_layers_table("vgg16", LAYERS, 32, str(measured))
    with caplog.at_level(logging.WARNING, logger="neurofacets"):
        out = cache.write_layers_table_kept("vgg16", LAYERS, 32, tmp_path / "a.csv", code="c1",
                                            cache_dir=tmp_path / "kept")
    assert "unreadable" in caplog.text
    assert out.read_bytes() == measured.read_bytes() == (tmp_path / "kept" / name).read_bytes()


def test_only_architectures_a_library_pins_are_kept():
    assert cache.cache_name("python:labnet:make_labnet", "all", 32, "c") is None
    names = {cache.cache_name(arch, "all", 224, "c") for arch in ("vgg16", "torchvision:vgg16")}
    assert len(names) == 1 and next(iter(names)).startswith("vgg16-224px-")  # one model, two spellings
    assert cache.cache_name("vgg16", "all", 224, "c") != cache.cache_name("vgg19", "all", 224, "c")
