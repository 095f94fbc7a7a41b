"""Classic-ML bias metrics (pre- and post-training), Clarify-compatible, and the `fmeval analyze` job.

`BiasFrame` (fmeval.bias.frame) holds them in memory; it is imported on first use, so that
`import fmeval.bias` stays light.
"""


def __getattr__(name: str):
    if name == "BiasFrame":
        from fmeval.bias.frame import BiasFrame

        return BiasFrame
    raise AttributeError(f"module 'fmeval.bias' has no attribute {name!r}")
