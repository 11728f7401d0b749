"""A specinv plugin (for the tests): the spec in :mod:`.spec`, the algorithm in :mod:`.impl`."""
