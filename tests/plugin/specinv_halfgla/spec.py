"""What the entry points name: light (no torch), so that ``specinv --help`` stays fast. The
algorithm is named by module and function and imported only when it runs."""
from specinv_cli.algorithms.registry import Method, Option, register_method

METHOD = Method("halfgla", "specinv_halfgla.impl", "halfgla",
                "Griffin-Lim for a fraction of --iters (test plugin)", "Griffin & Lim, IEEE TASSP 1984",
                (Option("fraction", float, 0.5, "share of --iters run as GLA", min=0.0, max=1.0),))


def register():
    """The other kind of entry point: a callable that registers methods."""
    register_method("quartergla", "specinv_halfgla.impl:halfgla", {"fraction": 0.25},
                    summary="Griffin-Lim for a quarter of --iters (test plugin)", paper="Griffin & Lim 1984")
