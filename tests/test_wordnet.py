"""The packaged WordNet 3.0 noun table and the parser that derived it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_data

from neurofacets.semantics.hierarchy import class_hierarchy
from neurofacets.semantics.stage import load_hierarchy
from neurofacets.semantics.wordnet import is_wnid, parse_data_noun, parse_index_noun, write_table

IMAGENET_WNIDS = Path(__file__).parent / "data" / "imagenet1k_wnids.txt"


@pytest.fixture(scope="module")
def wordnet():
    return load_hierarchy("wordnet")


def names_above(wordnet, wnid: str) -> set[str]:
    node = wordnet.index[wnid]
    return {wordnet.names[a] for a in wordnet.ancestors(node) if a != node}


def test_known_facts(wordnet):
    assert len(wordnet) == 82115  # noun synsets of WordNet 3.0
    assert wordnet.names[wordnet.index["n02084071"]] == "dog.n.01"
    assert wordnet.names[wordnet.index["n02085620"]] == "chihuahua.n.03"  # NLTK's name
    assert {"dog.n.01", "carnivore.n.01", "animal.n.01", "toy_dog.n.01", "entity.n.01"} <= names_above(
        wordnet, "n02085620")
    roots = [wordnet.names[i] for i, parents in enumerate(wordnet.parents) if not parents]
    assert roots == ["entity.n.01"]
    assert wordnet.depth[wordnet.index["n02084071"]] == 13  # NLTK: dog.n.01.max_depth() == 13
    # dog.n.01 has two hypernyms: canine.n.02 and domestic_animal.n.01
    assert sorted(wordnet.names[p] for p in wordnet.parents[wordnet.index["n02084071"]]) == [
        "canine.n.02", "domestic_animal.n.01"]
    # instance hypernyms count: the Mississippi (n09356080) is an instance of river.n.01
    mississippi = wordnet.index["n09356080"]
    assert "river.n.01" in {wordnet.names[p] for p in wordnet.parents[mississippi]}


def test_every_imagenet_class_is_found(wordnet):
    wnids = IMAGENET_WNIDS.read_text().split()
    assert len(wnids) == 1000 and all(is_wnid(w) for w in wnids)
    assert [w for w in wnids if w not in wordnet.index] == []
    ch = class_hierarchy(wordnet, wnids)
    assert ch.hierarchy.names[int(ch.classes_under.argmax())] == "entity.n.01"
    dog = ch.hierarchy.index["n02084071"]
    assert ch.classes_under[dog] == 118  # the 118 dog breeds of ImageNet-1k


def test_table_is_small_and_licensed():
    folder = resources.files("neurofacets.semantics").joinpath("data")
    assert len(folder.joinpath("wordnet30_nouns.csv.gz").read_bytes()) < 1_000_000
    licence = folder.joinpath("WORDNET_LICENSE").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in licence


# Lines in the format of data.noun / index.noun (wndb(5WN)), made up for the parser test.
INDEX = """  1 This is a licence line of the index file.
thing n 1 1 ~ 1 0 00000001
animal n 2 2 @ ~ 2 0 00000002 00000009
beast n 1 1 @ 1 0 00000002
dog n 1 1 @ 1 0 00000003
pet n 1 1 @ 1 0 00000004
rover n 1 1 @i 1 0 00000005
"""
DATA = """  1 This is a licence line of the data file.
00000001 03 n 01 thing 0 001 ~ 00000002 n 0000 | a thing
00000002 05 n 02 Animal 0 beast 0 002 @ 00000001 n 0000 ~ 00000003 n 0000 | an animal
00000003 05 n 01 dog 0 002 @ 00000002 n 0000 @ 00000004 n 0000 | a dog; "with | a bar in the gloss"
00000004 05 n 01 pet 0 001 @ 00000001 n 0000 | a pet
00000005 05 n 01 Rover 0 002 @i 00000003 n 0000 + 01234567 v 0101 | one dog
"""


def test_parser_on_handmade_lines(tmp_path):
    senses = parse_index_noun(INDEX.splitlines())
    assert senses["animal"] == [2, 9]
    table = parse_data_noun(DATA.splitlines(), senses)
    assert table.values.tolist() == [
        ["n00000001", "", "thing.n.01"],
        ["n00000002", "n00000001", "animal.n.01"],
        ["n00000003", "n00000002", "dog.n.01"],
        ["n00000003", "n00000004", "dog.n.01"],
        ["n00000004", "n00000001", "pet.n.01"],
        ["n00000005", "n00000003", "rover.n.01"],  # instance hypernym; the verb pointer is not one
    ]
    out = tmp_path / "t.csv.gz"
    write_table(table, out)
    first = out.read_bytes()
    write_table(table, out)
    assert out.read_bytes() == first  # deterministic bytes
    assert pd.read_csv(out, dtype=str, keep_default_na=False).equals(table)


def test_parser_names_bad_lines():
    senses = parse_index_noun(INDEX.splitlines())
    with pytest.raises(ValueError, match="line 1 is not a WordNet data line"):
        parse_data_noun(["00000009 05 n zz dog"], senses)
    with pytest.raises(ValueError, match="not a sense of 'cat'"):
        parse_data_noun(["00000003 05 n 01 cat 0 000 | a cat"], senses)


@pytest.mark.realdata
def test_ancestors_match_the_imagenet_sample(wordnet):
    """Every class of the 1000-photo sample: our ancestors = its wordnet_ancestors column."""
    table = pd.read_csv(shared_data("imagenet-sample", "images.csv"))
    for wnid, listed in zip(table["wnid"], table["wordnet_ancestors"]):
        lemmas = {name.rsplit(".", 2)[0] for name in names_above(wordnet, wnid)}
        assert lemmas == {a.lower() for a in listed.split(";")}, wnid
