"""Facets on a class hierarchy: a concept name per neuron, its semantic spread and facet.

The paper counts classes; ImageNet's classes are WordNet nouns, so 40 dog breeds are 40
classes but one concept. This subpackage reads the hierarchy above the classes and
describes each neuron by it (definitions in `concepts`):

- `wordnet`: the WordNet 3.0 noun hypernym table shipped with the package (derived
  once from Debian's ``wordnet-base``), and the parser that derived it;
- `hierarchy`: a hierarchy (a DAG of nodes with parents), read from the WordNet
  table or a user CSV ``class,parent``, restricted to a dataset's classes;
- `concepts`: per neuron the concept that covers a share of its top images, the
  semantic spread with its chance p-value, the semantic facet, and the metrics of the
  class-count row collapsed to coarser levels;
- `stage`: the entry points of the workflow's ``semantics`` rules.
"""

