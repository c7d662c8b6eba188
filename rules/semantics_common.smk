# Helpers of the semantics stage (rules/semantics.smk), also used by the gallery and
# neuron-picture rules: whether the run has a class hierarchy, and what then exists.
SEMANTICS = config["semantics"]
SEMANTICS_SOURCE = SEMANTICS["hierarchy"]


def semantics_hierarchy_inputs(wildcards):
    """classes.csv, and the user's hierarchy CSV when one is configured."""
    inputs = {"classes": f"{OUT}/dataset/classes.csv"}
    if SEMANTICS_SOURCE not in ("wordnet", "none"):
        inputs["hierarchy"] = SEMANTICS_SOURCE
    return inputs


def semantics_available():
    """Whether this run has a class hierarchy (evaluated once the checkpoint ran)."""
    if SEMANTICS_SOURCE == "none":
        return False
    from neurofacets.semantics.checkpoint import has_hierarchy

    return has_hierarchy(checkpoints.semantics_hierarchy.get().output[0])


def semantics_layer_input(wildcards):
    """A layer's semantics table for the gallery and neuron pictures, when the run has one."""
    return [f"{OUT}/semantics/{wildcards.layer}.csv"] if semantics_available() else []


def semantics_hierarchy_input(wildcards):
    """semantics/hierarchy.csv for the gallery, when the run has a hierarchy."""
    return [f"{OUT}/semantics/hierarchy.csv"] if semantics_available() else []


def evaluation_hierarchy_input(wildcards):
    """semantics/hierarchy.csv for the evaluation stage when the run has a class hierarchy:
    the neurons' concepts are evaluated too (rules/evaluation.smk)."""
    return semantics_hierarchy_input(wildcards) if SEMANTICS_SOURCE != "none" else []


def semantics_targets(wildcards):
    """The stage's final outputs, or nothing when the dataset has no hierarchy."""
    if not semantics_available():
        return []
    return [
        f"{OUT}/semantics/summary.csv",
        f"{OUT}/tables/concepts.csv",
        # the run's figures that need a hierarchy (rules/figures.smk)
        *(path for figure in RUN_FIGURES if figure.needs_hierarchy for path in figure.outputs(OUT, FIGURE_FORMATS)),
    ]
