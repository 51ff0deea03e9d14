"""``zhllama demo``: the whole pipeline on embedded defaults, with its stand-ins and report."""
